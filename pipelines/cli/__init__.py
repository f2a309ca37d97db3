"""The ``dapt`` command line: one subcommand per stage, thin over library functions.

Each module in this package registers one subcommand with ``register(subparsers)`` and
sets ``func`` on its parser; the function receives the parsed ``argparse.Namespace`` and
returns the process exit code.
"""

from __future__ import annotations

import argparse
import os
import sys

from pipelines.cli import corpus, plan, run, runs, tokenizer, train, validate

_COMMANDS = (corpus, validate, tokenizer, plan, train, run, runs)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or, given the ``command`` about to run, one that leaves out
    other commands' costly options (``train``'s, generated from its config model)."""
    parser = argparse.ArgumentParser(
        prog="dapt",
        description="Domain-adaptive pretraining pipeline: clean corpora, validate, train a "
        "frozen tokenizer, plan the model, pretrain it.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMANDS:
        if module is train:
            module.register(subparsers, training_options=command in (None, "train"))
        else:
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Everything after a bare "--" belongs to Apache Beam (runner options), untouched.
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1 :]
    _quiet_library_logs()
    command = next((a for a in argv if not a.startswith("-")), "")
    parser = build_parser(command)
    args = parser.parse_args(argv)
    args.beam_args = beam_args
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        # `dapt plan --json | head`: the reader left; that is not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _quiet_library_logs() -> None:
    """Beam logs an "apitools not found" warning at import and INFO chatter at run time;
    users of the CLI should see dapt's own progress and errors only."""
    import logging

    import warnings

    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    # MLflow configures its own INFO handler at import (database migrations, system-metric
    # monitor chatter, registration notices) and draws download bars while logging a model.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # Its advice on type hints and input examples for pyfunc models is not the user's to act on.
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\.")


if __name__ == "__main__":
    sys.exit(main())
