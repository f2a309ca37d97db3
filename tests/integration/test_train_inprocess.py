"""``train(config)`` called in this process, as ``dapt run`` does for a 1-process run:
twice in a row, after a failure, and inside a process group of the caller's."""

from __future__ import annotations

import os
import threading

import pytest

from pretrain_support import TINY


def _config(inputs, out, **extra):
    from pretrain.train import parse_config

    model = {TINY[i].lstrip("-").replace("-", "_"): int(TINY[i + 1]) for i in range(0, len(TINY), 2)}
    return parse_config({
        "tokens": str(inputs.tokens), "tokenizer": str(inputs.bundle), "output": str(out), "model": model,
        "mlflow": False, "max_steps": 3, "eval_every": 3, "eval_sequences": 16, "micro_batch": 4,
        "warmup_steps": 1, "lr": 3e-3, **extra,
    })


def test_train_twice_in_one_process_leaves_nothing_behind(pretrain_inputs, tmp_path):
    import torch.distributed as dist

    from pretrain.train import TrainError, train

    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    threads = set(threading.enumerate())
    first = train(_config(pretrain_inputs, tmp_path / "a"))
    assert not dist.is_initialized()
    # Fails after the process group is up: the group must go all the same.
    with pytest.raises(TrainError, match="not a multiple of micro_batch 4"):
        train(_config(pretrain_inputs, tmp_path / "bad", global_batch=6))
    assert not dist.is_initialized()
    second = train(_config(pretrain_inputs, tmp_path / "b"))
    assert not dist.is_initialized()
    assert first["steps"] == second["steps"] == 3 and first["stop_reason"] == "max_steps"
    # Same seed, same data: a second call in the same process computes the same numbers.
    assert first["best_val_loss"] == second["best_val_loss"]
    assert (tmp_path / "a" / "summary.json").is_file() and (tmp_path / "b" / "summary.json").is_file()
    assert set(threading.enumerate()) == threads
    # torch sets its inductor cache default in the environment the first time it looks it up.
    assert {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"} == env


def test_a_process_group_of_the_callers_is_used_and_left(pretrain_inputs, tmp_path):
    import torch.distributed as dist

    from pretrain.parallelize import setup_distributed, teardown_distributed
    from pretrain.train import train

    setup_distributed()
    try:
        group = dist.group.WORLD
        assert train(_config(pretrain_inputs, tmp_path / "a"))["steps"] == 3
        assert dist.is_initialized() and dist.group.WORLD is group
    finally:
        teardown_distributed()
