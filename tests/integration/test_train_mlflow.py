"""MLflow against a real ``mlflow server`` on 127.0.0.1 (sqlite store in tmp)."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from pretrain_support import DAPT, dapt, running_mlflow_server, train_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    yield from running_mlflow_server(tmp_path_factory)


def _client(server):
    from mlflow import MlflowClient

    return MlflowClient(server.uri)


def test_params_metrics_artifacts_and_registered_pyfunc(server, pretrain_inputs, tmp_path, monkeypatch):
    import mlflow

    out = tmp_path / "run"
    # Sampling every 120 s, longer than this run: its system metrics are the sample taken as
    # it ends (with MLflow's monitor alone a run shorter than the interval had none).
    result = dapt(train_args(pretrain_inputs, out, "--max-steps", "8", "--eval-every", "4", "--log-every", "4",
                             "--global-batch", "8", "--nproc-per-node", "2", "--mlflow", "--tracking-uri", server.uri,
                             "--register-as", "tiny-finance", "--system-metrics-every", "120"))
    assert result.returncode == 0, result.stderr[-3000:]
    run_id = json.loads((out / "summary.json").read_text())["mlflow_run_id"]
    client = _client(server)
    run = client.get_run(run_id)
    bundle = json.loads((pretrain_inputs.bundle / "manifest.json").read_text())
    params = run.data.params
    assert params["tokenizer_sha256"] == bundle["sha256"]
    assert (params["model.n_layer"], params["model.d_model"], params["world_size"]) == ("2", "64", "2")
    assert params["parallelism"] == "ddp" and params["precision"] == "fp32" and len(params["tokens_manifest_sha256"]) == 64
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(1, 9))
    assert [m.step for m in client.get_metric_history(run_id, "val_loss")] == [4, 8]
    assert {"lr", "grad_norm", "tokens_per_s", "final_best_val_loss"} <= set(run.data.metrics)
    assert any(key.startswith("system/") for key in run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"loss.png", "summary.json", "config.json", "tokenizer", "checkpoint-best"} <= artifacts
    assert {a.path for a in client.list_artifacts(run_id, "checkpoint-best")} >= {"checkpoint-best/model.safetensors"}
    assert run.info.status == "FINISHED"

    version = client.get_model_version_by_alias("tiny-finance", "candidate")
    assert version.run_id == run_id
    monkeypatch.setenv("MLFLOW_TRACKING_URI", server.uri)
    model = mlflow.pyfunc.load_model("models:/tiny-finance@candidate")
    texts = model.predict(["Net income rose", "The bank said"], params={"max_new_tokens": 8, "seed": 2})
    assert len(texts) == 2 and all(isinstance(t, str) and t for t in texts)
    scores = model.predict(["Net income rose 5 pct."], params={"task": "score"})
    assert scores[0]["tokens"] > 3 and 0 < scores[0]["loss"] < 8
    cli = dapt(["generate", "--model", "models:/tiny-finance@candidate", "--prompt", "Shares of", "--max-tokens", "8"],
               env={"MLFLOW_TRACKING_URI": server.uri})
    assert cli.returncode == 0 and cli.stdout.startswith("Shares of"), cli.stderr[-2000:]


def _last_step(path) -> int:
    if not path.is_file():
        return 0
    steps = [json.loads(line)["step"] for line in path.read_text().splitlines() if line.strip()]
    return max(steps, default=0)


def test_a_server_outage_loses_no_metric_and_a_resumed_run_logs_into_the_same_run(server, pretrain_inputs, tmp_path):
    import os

    out = tmp_path / "run"
    args = train_args(pretrain_inputs, out, "--max-steps", "120", "--eval-every", "40", "--log-every", "20",
                      "--checkpoint-every", "40", "--mlflow", "--tracking-uri", server.uri, "--register-as", "")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([*DAPT, *args], env=env, stderr=subprocess.PIPE, text=True)
    try:
        while _last_step(out / "metrics.jsonl") < 5:
            assert process.poll() is None, process.stderr.read()[-3000:]
            time.sleep(0.05)
        server.kill()
        down_at = _last_step(out / "metrics.jsonl")
        while _last_step(out / "metrics.jsonl") < 60 and process.poll() is None:
            time.sleep(0.05)
        time.sleep(3)  # several flush attempts fail while the server is down
        server.start()
        _, stderr = process.communicate(timeout=240)
    finally:
        process.kill()
        if server.process.poll() is not None:
            server.start()
    assert process.returncode == 0, stderr[-3000:]
    assert "unreachable" in stderr and "reachable again" in stderr
    assert down_at < 60
    summary = json.loads((out / "summary.json").read_text())
    run_id = summary["mlflow_run_id"]
    # Its size is the benchmark's business (bench_train.py); retries during the outage inflate it here.
    assert summary["tracking_share"] > 0
    client = _client(server)
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(1, 121))
    assert not (out / "mlflow_pending.jsonl").exists()

    again = dapt([*args[: args.index("--max-steps")], "--max-steps", "130", *args[args.index("--max-steps") + 2 :]])
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["mlflow_run_id"] == run_id
    assert [m.step for m in client.get_metric_history(run_id, "loss")] == list(range(1, 131))


def test_in_process_training_into_a_given_run_and_registration_beside_an_active_run(server, pretrain_inputs, tmp_path):
    """What dapt run does: train one process in its own interpreter into a child run it
    made, then register that run's model, with the caller's own MLflow state untouched."""
    import os
    import threading

    import mlflow

    from pretrain.tracking import CLIENT_ENV, register_model
    from pretrain.train import parse_config, train

    client = _client(server)
    experiment = client.create_experiment("in-process")
    parent = client.create_run(experiment).info.run_id
    child = client.create_run(experiment, tags={"mlflow.parentRunId": parent}).info.run_id
    env = {k: os.environ.get(k) for k in CLIENT_ENV}
    out = tmp_path / "run"
    config = parse_config({
        "tokens": str(pretrain_inputs.tokens), "tokenizer": str(pretrain_inputs.bundle), "output": str(out),
        "model": {"n_layer": 2, "d_model": 64, "n_head": 1, "seq_len": 64}, "micro_batch": 4, "max_steps": 4,
        "eval_every": 2, "eval_sequences": 16, "tracking_uri": server.uri, "experiment": "in-process",
        "mlflow_run_id": child, "register_as": "",
    })
    summary = train(config)
    assert summary["mlflow_run_id"] == child
    assert {k: os.environ.get(k) for k in CLIENT_ENV} == env
    # The trainer's own threads are gone (MLflow's artifact-upload pools keep or retire idle
    # workers of their own, which says nothing of ours).
    ours = {"mlflow-flush", "SystemMetricsMonitor"}
    assert not {t.name for t in threading.enumerate() if t.is_alive()} & ours
    run = client.get_run(child)
    assert run.info.status == "FINISHED" and run.data.params["model.n_layer"] == "2"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert [m.step for m in client.get_metric_history(child, "loss")] == [1, 2, 3, 4]
    assert client.search_registered_models("name = 'in-process'") == []

    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(server.uri)
    try:
        with mlflow.start_run(experiment_id=experiment) as own:
            version = register_model(server.uri, child, "in-process", out / "tokenizer", out / "checkpoints" / "best")
            assert mlflow.active_run().info.run_id == own.info.run_id
        assert mlflow.get_tracking_uri() == server.uri
    finally:
        mlflow.set_tracking_uri(previous)
    assert version == 1
    registered = client.get_model_version_by_alias("in-process", "candidate")
    assert registered.version == "1" and registered.run_id == child
    assert client.get_run(own.info.run_id).data.tags.get("mlflow.parentRunId") is None
