"""Real torchrun with 2 gloo processes: DDP and FSDP2 against one process, two "nodes"
(two torchrun agents meeting at a c10d rendezvous on this machine), early stopping."""

from __future__ import annotations

import json

import pytest

from pretrain_support import dapt, free_port, losses, start_dapt, train_args

pytestmark = pytest.mark.slow

STEPS = ["--max-steps", "6", "--eval-every", "3", "--log-every", "3", "--global-batch", "8"]


@pytest.fixture(scope="module")
def one_process(pretrain_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("one") / "run"
    result = dapt(train_args(pretrain_inputs, out, *STEPS))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.mark.parametrize("parallelism", ["ddp", "fsdp"])
def test_two_processes_match_one_with_the_same_global_batch(parallelism, one_process, pretrain_inputs, tmp_path):
    out = tmp_path / "run"
    result = dapt(train_args(pretrain_inputs, out, *STEPS, "--nproc-per-node", "2", "--parallelism", parallelism))
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["parallelism"] == parallelism
    single, double = losses(one_process), losses(out)
    assert sorted(double) == list(range(1, 7))
    for step in single:
        assert double[step] == pytest.approx(single[step], rel=1e-5, abs=1e-6)
    assert double[6] < double[1] - 0.2  # it learns, so the comparison is not of two constants
    one = json.loads((one_process / "summary.json").read_text())
    assert summary["best_val_loss"] == pytest.approx(one["best_val_loss"], rel=1e-5)


def test_two_nodes_match_one_process_with_the_same_global_batch(one_process, pretrain_inputs, tmp_path):
    """What infra/torchrun.md tells each node to run, with both nodes on this machine."""
    out = tmp_path / "run"
    endpoint = f"127.0.0.1:{free_port()}"
    nodes = [
        start_dapt(train_args(pretrain_inputs, out, *STEPS, "--nproc-per-node", "1", "--nnodes", "2",
                              "--node-rank", str(rank), "--rdzv-endpoint", endpoint), tmp_path / f"node{rank}.log")
        for rank in (0, 1)
    ]
    try:
        codes = [node.wait(timeout=240) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    logs = "\n".join((tmp_path / f"node{rank}.log").read_text()[-2000:] for rank in (0, 1))
    assert codes == [0, 0], logs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 6
    single, double = losses(one_process), losses(out)
    assert sorted(double) == list(range(1, 7))
    for step in single:
        assert double[step] == pytest.approx(single[step], rel=1e-5, abs=1e-6)
    one = json.loads((one_process / "summary.json").read_text())
    assert summary["best_val_loss"] == pytest.approx(one["best_val_loss"], rel=1e-5)
    # c10d ranks follow the agents' sorted addresses, not --node-rank: either node may be rank 0.
    assert sum("done: max_steps after 6 steps" in (tmp_path / f"node{r}.log").read_text() for r in (0, 1)) == 1


def test_early_stopping_on_a_plateau_every_rank_exits_0(pretrain_inputs, tmp_path):
    out = tmp_path / "run"
    # A rate this small cannot move the loss by min_delta: a plateau from the first eval.
    args = train_args(pretrain_inputs, out, "--max-steps", "200", "--eval-every", "2", "--patience", "2",
                      "--min-delta", "0.01", "--lr-reductions", "1", "--nproc-per-node", "2")
    args[args.index("--lr") + 1] = "1e-7"
    result = dapt(args)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "early_stopping"
    # best at the first eval (step 2); 2 flat evals -> rate halved; 2 more -> stop at step 10
    assert summary["best_step"] == 2 and summary["steps"] == 10
    assert "(lr reduced)" in result.stderr
    assert (out / "checkpoints" / "best").is_dir()
    assert json.loads((out / "checkpoints" / "best" / "state.json").read_text())["step"] == 2


def test_activation_checkpointing_recomputes_the_same_numbers(one_process, pretrain_inputs, tmp_path):
    out = tmp_path / "run"
    result = dapt(train_args(pretrain_inputs, out, *STEPS, "--activation-checkpointing"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert losses(out) == pytest.approx(losses(one_process), rel=1e-6)
    names = set(json.loads((out / "checkpoints" / "best" / "manifest.json").read_text())["files"])
    assert "model.safetensors" in names
    from safetensors import safe_open

    with safe_open(out / "checkpoints" / "best" / "model.safetensors", "pt") as f:
        assert not any("_checkpoint_wrapped_module" in key for key in f.keys())
