"""Kill at step k, resume: the same loss sequence and bitwise-equal weights and moments."""

from __future__ import annotations

import json

import pytest

from pretrain_support import dapt, losses, train_args

pytestmark = pytest.mark.slow

ARGS = ["--max-steps", "8", "--eval-every", "3", "--checkpoint-every", "2", "--log-every", "4",
        "--global-batch", "8", "--nproc-per-node", "2"]


def test_kill_and_resume_continue_exactly(pretrain_inputs, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    result = dapt(train_args(pretrain_inputs, straight, *ARGS))
    assert result.returncode == 0, result.stderr[-3000:]

    # Every rank SIGKILLs itself after step 5: the last checkpoint is step 4.
    killed = dapt(train_args(pretrain_inputs, resumed, *ARGS), env={"DAPT_FAULT_KILL_AT_STEP": "5"})
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr
    assert not (resumed / "summary.json").exists()
    assert sorted(p.name for p in (resumed / "checkpoints").glob("step-*")) == ["step-00000003", "step-00000004"]

    again = dapt(train_args(pretrain_inputs, resumed, *ARGS))
    assert again.returncode == 0, again.stderr[-3000:]
    assert losses(resumed) == losses(straight)
    steps = [json.loads(line)["step"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert 5 in steps and steps.count(5) <= 2  # the killed step is run (and reported) again
    for name in ("model.safetensors", "optimizer.safetensors", "optimizer.json"):
        a = (straight / "checkpoints" / "step-00000008" / name).read_bytes()
        assert a == (resumed / "checkpoints" / "step-00000008" / name).read_bytes(), name
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (straight, resumed))
    assert (s1["steps"], s1["tokens_seen"], s1["best_val_loss"]) == (s2["steps"], s2["tokens_seen"], s2["best_val_loss"])


def test_resume_refuses_another_model_in_the_same_directory(pretrain_inputs, tmp_path):
    out = tmp_path / "run"
    assert dapt(train_args(pretrain_inputs, out, "--max-steps", "2", "--eval-every", "2")).returncode == 0
    args = train_args(pretrain_inputs, out, "--max-steps", "4", "--eval-every", "2")
    args[args.index("--d-model") + 1] = "128"
    result = dapt(args)
    assert result.returncode == 2 and "checkpoint of another run (config_digest differs" in result.stderr
