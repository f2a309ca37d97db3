"""``dapt run PIPELINE.yaml``: the whole flow, cached by content, under one MLflow run.

Thin over :func:`pipelines.flow.run_flow`; Beam, MLflow and torch are imported when the
command runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STAGE_NAMES = ("clean", "validate", "tokenizer", "tokenize", "plan", "train", "register")

DESCRIPTION = """\
Run every stage of a pipeline in order: clean -> validate -> tokenizer -> tokenize ->
plan -> train -> register. Each stage's output is addressed by its inputs, config and
code: a stage with nothing changed is skipped (and says so), a new or re-delivered
corpus re-runs only what depends on it, and documents kept by an earlier run are not
kept again. One MLflow parent run per pipeline run, a child run per stage."""

EPILOG = """\
examples:
  # the finance sample end to end (DirectRunner, local sqlite MLflow store, CPU)
  dapt run examples/finance.yaml

  # against a tracking server; a scheduled run waits for one still running
  dapt run pipelines/finance.yaml --tracking-uri http://127.0.0.1:5000 --wait

  # only the data stages; then re-plan and re-train with the cached tokens
  dapt run finance.yaml --until tokenize
  dapt run finance.yaml --from plan --force train

  # Beam options pass through after --
  dapt run finance.yaml -- --direct_running_mode=multi_processing --direct_num_workers=2

the pipeline YAML: corpora (or {registered: NAME} from `dapt corpus add`), clean,
validate, tokenizer, tokenize, plan, train, register and run: sections (see
examples/finance.yaml). Work directory: --workdir, else run.workdir, else out/<name>.

exit status: 0 done, 1 a stage failed (e.g. a blocking validation check), 2 config or
MLflow unreachable, 3 another run of this pipeline holds the lock."""


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run", help="run the whole pipeline (cached, incremental, tracked in MLflow)",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("pipeline", metavar="PIPELINE.yaml")
    parser.add_argument("--workdir", metavar="DIR", help="stage outputs, dedup index and lock")
    parser.add_argument("--tracking-uri", metavar="URI", help="MLflow (default: run.tracking_uri, "
                        "MLFLOW_TRACKING_URI, else sqlite:///mlflow.db)")
    parser.add_argument("--from", dest="from_stage", choices=STAGE_NAMES, default="clean",
                        help="start here; earlier stages must be cached")
    parser.add_argument("--until", dest="until_stage", choices=STAGE_NAMES, default="register", help="stop after this")
    parser.add_argument("--force", action="append", choices=STAGE_NAMES, default=[], metavar="STAGE",
                        help="recompute this stage and the ones after it, even if cached")
    parser.add_argument("--wait", action="store_true", help="wait for a running run of this pipeline instead of exiting 3")
    parser.add_argument("--quiet", action="store_true", help="no progress lines inside stages")
    parser.set_defaults(func=run)
    return parser


def _fail(message, code: int) -> int:
    print(f"dapt run: {message}", file=sys.stderr)
    return code


def run(args: argparse.Namespace) -> int:
    from pipelines.config import ConfigError, load_config
    from pipelines.flow import STAGES, FlowError, FlowOptions, run_flow
    from pipelines.lock import LockHeld, PipelineLock
    from pipelines.run_tracking import PipelineTracking, TrackingUnavailable
    from pretrain.tracking import default_tracking_uri
    from pipelines.stage_cache import digest

    if STAGES.index(args.from_stage) > STAGES.index(args.until_stage):
        return _fail(f"--from {args.from_stage} comes after --until {args.until_stage}", 2)
    try:
        config = load_config(args.pipeline)
    except ConfigError as err:
        return _fail(err, 2)
    name = config.run.name or Path(args.pipeline).name.split(".")[0]
    work = Path(args.workdir or config.run.workdir or Path("out") / name).absolute()
    uri = default_tracking_uri(args.tracking_uri or config.run.tracking_uri)
    try:
        lock = PipelineLock(work, name, wait=args.wait).acquire()
    except LockHeld as err:
        return _fail(f"{err}; pass --wait to wait for it", 3)
    try:
        try:
            tracking = PipelineTracking(uri, config.run.experiment, name, work)
        except TrackingUnavailable as err:
            return _fail(err, 2)
        # What a recomputed stage feeds is recomputed too (a retrained model is registered anew).
        forced = frozenset(STAGES[min(STAGES.index(s) for s in args.force):]) if args.force else frozenset()
        options = FlowOptions(work, uri, args.from_stage, args.until_stage, forced, args.beam_args,
                              show_progress=not args.quiet)
        run_id = tracking.start(digest([config.model_dump(mode="json"), args.from_stage, args.until_stage]))
        print(f"dapt run: {name}: MLflow run {run_id}{' (resumed)' if tracking.resumed else ''} at {uri}; "
              f"work directory {work}", file=sys.stderr, flush=True)
        try:
            result = run_flow(config, name, options, tracking)
        except FlowError as err:
            tracking.finish({}, {}, "FAILED")
            return _fail(err, err.exit_code)
        tracking.finish(result.params, result.metrics, "FINISHED", result.tags)
        _record_usage(config, result)
        print(summary(name, result, tracking.experiment_id))
        return 0
    finally:
        lock.release()


def _record_usage(config, result) -> None:
    """Documents in, kept and tokens of each registered corpus, for `dapt corpus list`."""
    from pipelines.registry import Registry, RegistryError, default_path

    if not default_path().is_file():
        return
    by_corpus = {}
    if result.records.get("tokenize"):
        manifest = Path(result.records["tokenize"][0].output) / "manifest.json"
        by_corpus = json.loads(manifest.read_text(encoding="utf-8"))["by_corpus"]
    try:
        registry = Registry()
        for corpus in config.corpora:
            # Only the registered corpus itself, not an inline one that shares its name.
            if corpus.name in registry and registry.corpus_config(corpus.name) == corpus:
                c = result.corpora[corpus.name]
                registry.record_run(corpus.name, result.run_id, c["documents_in"], c["kept"],
                                    by_corpus.get(corpus.name, {}).get("tokens"))
    except RegistryError as err:
        print(f"dapt run: warning: the run finished but its figures are not in the corpus registry: {err}",
              file=sys.stderr)


def summary(name: str, result, experiment_id: str) -> str:
    """The end-of-run table (the same figures the parent run holds)."""
    from pipelines.runs import format_summary, ui_command

    lines = [format_summary([(name, result.run_id, result.params, result.metrics)])]
    lines.append(f"MLflow UI: {ui_command(result.tracking_uri, experiment_id)}")
    return "\n".join(lines)
