"""The ``dapt`` parser builds the costly options of ``train`` only when they can be used."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO
from pipelines.cli import build_parser


def _train_flags(command: str | None) -> set[str]:
    parser = build_parser(command)
    train = parser._subparsers._group_actions[0].choices["train"]
    return {flag for action in train._actions for flag in action.option_strings}


def test_train_options_are_built_for_train_and_for_the_whole_parser_only():
    assert {"--lr", "--max-steps", "--seed", "--tokens"} <= _train_flags("train")
    assert _train_flags(None) == _train_flags("train")
    others = _train_flags("validate")
    assert "--tokens" in others and "--lr" not in others


def test_another_command_does_not_import_the_training_config():
    probe = ("import sys\nfrom pipelines.cli import main\n"
             "try:\n    main(['validate', '--help'])\nexcept SystemExit:\n    pass\n"
             "print('pretrain.train' in sys.modules)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True)
    assert run.stdout.splitlines()[-1] == "False"
