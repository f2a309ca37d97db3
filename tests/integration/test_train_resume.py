"""Kill at step k, resume: the same loss sequence, bitwise-equal weights and moments, and
each step once in ``metrics.jsonl`` and in the MLflow run, whichever run it logs into."""

from __future__ import annotations

import json
import shutil

import pytest

from pretrain_support import dapt, jsonl_steps, losses, metric_steps, running_mlflow_server, train_args

pytestmark = pytest.mark.slow

ARGS = ["--max-steps", "8", "--eval-every", "3", "--checkpoint-every", "2", "--log-every", "1",
        "--global-batch", "8", "--nproc-per-node", "2"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from running_mlflow_server(tmp_path_factory)


def test_kill_and_resume_continue_exactly(server, pretrain_inputs, tmp_path):
    from mlflow import MlflowClient

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    result = dapt(train_args(pretrain_inputs, straight, *ARGS))
    assert result.returncode == 0, result.stderr[-3000:]

    tracked = [*ARGS, "--mlflow", "--tracking-uri", server.uri, "--register-as", ""]
    # Every rank SIGKILLs itself once step 6 is trained, before it is reported or saved:
    # the last checkpoint is step 4, and step 5 is in metrics.jsonl.
    killed = dapt(train_args(pretrain_inputs, resumed, *tracked), env={"DAPT_FAULT_KILL_AT_STEP": "6"})
    assert killed.returncode != 0 and "SIGKILL" in killed.stderr
    assert not (resumed / "summary.json").exists()
    assert sorted(p.name for p in (resumed / "checkpoints").glob("step-*")) == ["step-00000003", "step-00000004"]
    assert jsonl_steps(resumed) == ([1, 2, 3, 4, 5], [3])

    again = dapt(train_args(pretrain_inputs, resumed, *tracked))
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from step 4" in again.stderr
    assert losses(resumed) == losses(straight)
    assert jsonl_steps(resumed) == (list(range(1, 9)), [3, 6, 8])
    for name in ("model.safetensors", "optimizer.safetensors", "optimizer.json"):
        a = (straight / "checkpoints" / "step-00000008" / name).read_bytes()
        assert a == (resumed / "checkpoints" / "step-00000008" / name).read_bytes(), name
    s1, s2 = (json.loads((d / "summary.json").read_text()) for d in (straight, resumed))
    assert (s1["steps"], s1["tokens_seen"], s1["best_val_loss"]) == (s2["steps"], s2["tokens_seen"], s2["best_val_loss"])

    # Whatever of steps 1-5 reached the server before the kill is not sent again, and what
    # was still buffered when it came is sent from metrics.jsonl.
    client = MlflowClient(server.uri)
    run_id = s2["mlflow_run_id"]
    assert metric_steps(client, run_id, "loss") == list(range(1, 9))
    assert metric_steps(client, run_id, "val_loss") == [3, 6, 8]
    assert {m.step: m.value for m in client.get_metric_history(run_id, "loss")} == losses(straight)


def _forget_after_step_4(out) -> None:
    """A run killed after step 8 was trained and logged, before it was saved: the last
    checkpoint left is step 4."""
    for step in (6, 8):
        shutil.rmtree(out / "checkpoints" / f"step-{step:08d}")
    (out / "summary.json").unlink()


def test_each_step_reaches_mlflow_once_whichever_run_a_resume_logs_into(server, pretrain_inputs, tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(server.uri)
    experiment = client.create_experiment("resume-runs")
    given = client.create_run(experiment).info.run_id  # as dapt run makes its child run
    out = tmp_path / "run"
    args = train_args(pretrain_inputs, out, "--max-steps", "8", "--eval-every", "3", "--checkpoint-every", "2",
                      "--keep-last", "4", "--log-every", "4", "--mlflow", "--tracking-uri", server.uri,
                      "--register-as", "", "--experiment", "resume-runs")
    first = dapt([*args, "--mlflow-run-id", given])
    assert first.returncode == 0, first.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["mlflow_run_id"] == given
    params = client.get_run(given).data.params
    assert params["model.n_layer"] == "2" and params["world_size"] == "1"
    logged = {m.step: m.value for m in client.get_metric_history(given, "loss")}
    assert sorted(logged) == list(range(1, 9))

    # Resumed into the same run: steps 5-8 are trained again and not logged again.
    _forget_after_step_4(out)
    again = dapt(args)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resumed from step 4" in again.stderr and "keeps param" not in again.stderr
    assert json.loads((out / "summary.json").read_text())["mlflow_run_id"] == given
    assert jsonl_steps(out) == (list(range(1, 9)), [3, 6, 8])
    for key in ("loss", "lr", "grad_norm", "tokens"):
        assert metric_steps(client, given, key) == list(range(1, 9)), key
    assert metric_steps(client, given, "val_loss") == [3, 6, 8]
    assert metric_steps(client, given, "final_steps") == [8]
    assert {m.step: m.value for m in client.get_metric_history(given, "loss")} == logged

    # Resumed into a new run (dapt run again, with a new child run): it gets the params and
    # the whole curve, steps 1-4 from metrics.jsonl.
    _forget_after_step_4(out)
    other = client.create_run(experiment).info.run_id
    third = dapt([*args, "--mlflow-run-id", other])
    assert third.returncode == 0, third.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["mlflow_run_id"] == other
    assert client.get_run(other).data.params == params
    assert {m.step: m.value for m in client.get_metric_history(other, "loss")} == logged
    assert metric_steps(client, other, "val_loss") == [3, 6, 8]
    assert metric_steps(client, given, "loss") == list(range(1, 9))


def test_resume_refuses_another_model_in_the_same_directory(pretrain_inputs, tmp_path):
    out = tmp_path / "run"
    assert dapt(train_args(pretrain_inputs, out, "--max-steps", "2", "--eval-every", "2")).returncode == 0
    args = train_args(pretrain_inputs, out, "--max-steps", "4", "--eval-every", "2")
    args[args.index("--d-model") + 1] = "128"
    result = dapt(args)
    assert result.returncode == 2 and "checkpoint of another run (config_digest differs" in result.stderr
