"""``dapt run`` end to end against a real ``mlflow server`` on 127.0.0.1: every stage,
the cache, incremental cleaning of a re-delivered corpus, the lock, a killed run
resumed, MLflow's parent and child runs, ``dapt runs compare``.

Each run is a real subprocess (Beam, GE, SentencePiece, torch) on small subsets of the
shared samples with a tiny model, so one full run takes well under a minute here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import FINANCE, MEDICAL, REPO
from flow_support import children, dapt_run, parent_runs, pipeline, write_subset
from pretrain_support import DAPT

pytestmark = pytest.mark.slow

STAGES = ["clean", "validate", "tokenizer", "tokenize", "plan", "train", "register"]


def stage_lines(stderr: str) -> dict[str, str]:
    states = {}
    for line in stderr.splitlines():
        parts = line.split()
        if len(parts) > 1 and parts[0] in STAGES and parts[1] in ("done", "cached"):
            states[parts[0]] = parts[1]
    return states


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow-data")
    return {
        "finance": write_subset(root / "finance.jsonl.gz", FINANCE, 0, 500),
        "finance_more": write_subset(root / "finance-more.jsonl.gz", FINANCE, 0, 650),
        "medical": write_subset(root / "medical.jsonl.gz", MEDICAL, 0, 500),
    }


@pytest.fixture(scope="module")
def first(tmp_path_factory, mlflow_server, data):
    """One full run of a finance-only pipeline, then the same again."""
    root = tmp_path_factory.mktemp("flow")
    config = pipeline(root, "fin", {"finance": data["finance"]})
    run1 = dapt_run(config, mlflow_server.uri)
    started = time.monotonic()
    run2 = dapt_run(config, mlflow_server.uri)
    return root, config, run1, run2, time.monotonic() - started


def test_full_run_logs_a_parent_and_one_child_per_stage(first, mlflow_server):
    from mlflow import MlflowClient

    root, config, run1, _, _ = first
    assert run1.returncode == 0, run1.stderr[-3000:]
    assert stage_lines(run1.stderr) == dict.fromkeys(STAGES, "done")
    client = MlflowClient(mlflow_server.uri)
    parent = parent_runs(client, "fin")[0]
    assert parent.info.status == "FINISHED"
    kids = children(client, parent.info.run_id)
    assert sorted(k.data.tags["dapt_stage"] for k in kids) == sorted(STAGES)
    assert all(k.info.status == "FINISHED" for k in kids)
    params, metrics = parent.data.params, parent.data.metrics
    assert params["corpora"] == "finance" and len(params["corpus.finance.digest"]) == 64
    assert metrics["documents_in.finance"] == 500
    assert 0.5 < metrics["kept_ratio.finance"] <= 1
    assert metrics["tokens.finance"] > 0 and metrics["tokenizer.fertility"] > 1
    assert params["tokenizer.sha256"] == json.loads(
        (Path(next(p for p in (root / "work" / "fin" / "tokenizer").iterdir() if p.is_dir())) / "manifest.json")
        .read_text())["sha256"]
    assert metrics["train.best_val_loss"] < 7 and metrics["train.tokens_per_s"] > 0
    assert metrics["validate.blocking_failed"] == 0
    # the model is in the registry under the alias, from the train child run
    version = client.get_model_version_by_alias("dapt-fin", "candidate")
    train_child = next(k for k in kids if k.data.tags["dapt_stage"] == "train")
    assert version.run_id == train_child.info.run_id
    assert "val_loss" in train_child.data.metrics  # the trainer's own curves went to the child
    # the end table and the UI command
    assert "best val loss" in run1.stdout and "MLflow UI" in run1.stdout


def test_rerun_with_nothing_changed_skips_every_stage(first, mlflow_server):
    from mlflow import MlflowClient

    _, _, run1, run2, seconds = first
    assert run2.returncode == 0, run2.stderr[-3000:]
    assert stage_lines(run2.stderr) == dict.fromkeys(STAGES, "cached")
    client = MlflowClient(mlflow_server.uri)
    a, b = parent_runs(client, "fin")[:2]
    assert set(a.data.params) == set(b.data.params) and set(a.data.metrics) == set(b.data.metrics)
    assert b.data.metrics["stages.cached"] == len(STAGES) and b.data.metrics["stages.run"] == 0
    # the second parent has its own seven children, each with the first one's keys
    kids_a = {k.data.tags["dapt_stage"]: k for k in children(client, a.info.run_id)}
    kids_b = {k.data.tags["dapt_stage"]: k for k in children(client, b.info.run_id)}
    assert set(kids_b) == set(STAGES)
    for stage in STAGES:
        assert kids_b[stage].data.tags["dapt_cached"] == "true"
        if stage != "train":  # the trainer's own curves exist only where it trained
            assert set(kids_b[stage].data.params) == set(kids_a[stage].data.params), stage
            assert set(kids_b[stage].data.metrics) == set(kids_a[stage].data.metrics), stage
    print(f"cached re-run: {seconds:.1f} s")


def test_from_and_force_recompute_only_the_stages_asked_for(first, mlflow_server):
    _, config, *_ = first
    run = dapt_run(config, mlflow_server.uri, "--from", "plan", "--force", "train")
    assert run.returncode == 0, run.stderr[-3000:]
    # earlier stages are read from the cache without a line of their own; train and what
    # it feeds are recomputed
    assert stage_lines(run.stderr) == {"plan": "cached", "train": "done", "register": "done"}
    missing = dapt_run(config, mlflow_server.uri, "--from", "train", "--workdir", str(config.parent / "elsewhere"))
    assert missing.returncode == 2 and "has no finished output" in missing.stderr


def test_two_training_processes_through_torchrun(first, mlflow_server, data):
    root, *_ = first
    (root / "nproc").mkdir(exist_ok=True)
    two = pipeline(root / "nproc", "fin", {"finance": data["finance"]},
                   run={"name": "fin", "workdir": str(root / "work" / "fin"), "nproc_per_node": 2})
    run = dapt_run(two, mlflow_server.uri, "--from", "train")
    assert run.returncode == 0, run.stderr[-3000:]
    assert stage_lines(run.stderr) == {"train": "done", "register": "done"}
    summaries = [json.loads(p.read_text()) for p in (root / "work" / "fin" / "train").glob("*/summary.json")]
    assert sorted(s["world_size"] for s in summaries) == [1, 2]


def test_registered_corpus_gets_the_figures_of_the_run(tmp_path, mlflow_server, data):
    registry = tmp_path / "registry.json"
    env = {**os.environ, "PYTHONPATH": str(REPO), "DAPT_REGISTRY": str(registry)}
    added = subprocess.run([*DAPT, "corpus", "add", "fin-reg", "--path", str(data["finance"]), "--domain", "finance",
                            "--id-field", "id", "--title-field", "title"], cwd=REPO, env=env, capture_output=True, text=True)
    assert added.returncode == 0, added.stderr
    config = pipeline(tmp_path, "reg", {})
    text = config.read_text().replace("corpora: []", "corpora:\n- registered: fin-reg")
    config.write_text(text)
    run = dapt_run(config, mlflow_server.uri, "--until", "tokenize", env={"DAPT_REGISTRY": str(registry)})
    assert run.returncode == 0, run.stderr[-3000:]
    listed = subprocess.run([*DAPT, "corpus", "show", "fin-reg", "--json"], cwd=REPO, env=env, capture_output=True,
                            text=True)
    usage = json.loads(listed.stdout)["usage"]
    assert usage["documents_in"] == 500 and 0 < usage["kept"] <= 500 and usage["tokens"] > 0
    assert usage["run_id"] in run.stderr


def test_added_corpus_reruns_only_what_depends_on_it_and_compare_names_the_keys(first, tmp_path, mlflow_server, data):
    from mlflow import MlflowClient

    root, config, *_ = first
    both = pipeline(root, "fin", {"finance": data["finance"], "medical": data["medical"]})
    run = dapt_run(both, mlflow_server.uri)
    assert run.returncode == 0, run.stderr[-3000:]
    assert stage_lines(run.stderr) == {**dict.fromkeys(STAGES, "done")}
    assert "clean     medical: new delivery" in run.stderr and "clean     finance: new delivery" not in run.stderr
    client = MlflowClient(mlflow_server.uri)
    runs = parent_runs(client, "fin")
    a, b = runs[0], runs[-1]
    compared = subprocess.run([*DAPT, "runs", "compare", a.info.run_id, b.info.run_id, "--tracking-uri", mlflow_server.uri,
                               "--json"], cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert compared.returncode == 0, compared.stderr
    differ = {d["key"] for d in json.loads(compared.stdout)["differ"]}
    expected = {
        "corpora", "corpus.medical.digest", "documents_in.medical", "kept.medical", "kept_ratio.medical",
        "tokens.medical", "tokens.finance", "tokenizer.sha256", "tokenizer.fertility", "tokenizer.fertility.finance",
        "tokenizer.fertility.medical", "model_version", "train.best_val_loss", "train.final_val_loss",
        "train.tokens_per_s", "plan.params", "plan.tokens", "plan.epochs", "plan.n_layer", "plan.d_model",
        "plan.n_head",
    }
    # what did not change stays equal: finance's digest, documents in, kept; the law; the vocabulary
    assert {"corpus.finance.digest", "documents_in.finance", "kept.finance", "plan.law",
            "tokenizer.vocab_size", "pipeline"}.isdisjoint(differ)
    assert {"corpora", "corpus.medical.digest", "kept.medical", "tokens.medical", "tokenizer.sha256"} <= differ
    assert differ <= expected | {"stages.cached", "stages.run"}, differ - expected


def test_redelivered_corpus_keeps_only_new_documents(first, tmp_path, mlflow_server, data):
    import pyarrow.parquet as pq

    root, *_ = first
    # The 150 added Reuters items hold 23 % "blah blah" placeholders, over the gate's 15 %
    # for a whole corpus: the gate warns here instead of stopping the run.
    lenient = {"validate": {"severity": {"drop_rates": "warning"}}}
    grown = pipeline(tmp_path, "grow", {"finance": data["finance"]}, **lenient)
    assert dapt_run(grown, mlflow_server.uri, "--until", "validate").returncode == 0
    regrown = pipeline(tmp_path, "grow", {"finance": data["finance_more"]}, **lenient)
    run = dapt_run(regrown, mlflow_server.uri, "--until", "tokenize")
    assert run.returncode == 0, run.stderr[-3000:]
    ledger = next((tmp_path / "work" / "grow" / "clean").glob("ledger-*.json"))
    deliveries = json.loads(ledger.read_text())
    assert [d["corpus"] for d in deliveries] == ["finance", "finance"]
    kept = [pq.read_table(tmp_path / "work" / "grow" / "clean" / d["key"] / "kept", columns=["id"])["id"].to_pylist()
            for d in deliveries]
    assert kept[0] and kept[1], "both deliveries keep documents"
    assert not set(kept[0]) & set(kept[1]), "a document kept earlier was kept again"
    # the tokens cover both deliveries, each document once
    tokens = next(p for p in (tmp_path / "work" / "grow" / "tokenize").iterdir() if p.is_dir())
    documents = pq.read_table(tokens / "documents.parquet", columns=["id"])["id"].to_pylist()
    assert sorted(documents) == sorted(kept[0] + kept[1])


def test_lock_refuses_a_second_run_and_a_crashed_holder_is_taken_over(tmp_path, mlflow_server, data):
    config = pipeline(tmp_path, "locked", {"finance": data["finance"]})
    work = tmp_path / "work" / "locked"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; from pipelines.lock import PipelineLock; "
         f"PipelineLock(Path({str(work)!r}), 'locked').acquire(); print('held', flush=True); time.sleep(600)"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    refused = dapt_run(config, mlflow_server.uri, "--until", "clean")
    assert refused.returncode == 3
    assert f"pid {holder.pid}" in refused.stderr and "--wait" in refused.stderr
    # --wait: the second run waits for the holder, which then crashes; the waiter takes over
    waiter = subprocess.Popen(
        [*DAPT, "run", str(config), "--tracking-uri", mlflow_server.uri, "--quiet", "--until", "clean", "--wait"],
        cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True,
    )
    seen: list[str] = []
    while not any("dapt run: waiting for pipeline 'locked'" in line for line in seen):
        line = waiter.stderr.readline()
        assert line, f"the waiting run ended without waiting: {seen}"
        seen.append(line)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    rest = waiter.communicate(timeout=300)[1]
    assert waiter.returncode == 0, rest[-3000:]
    assert f"taking over the stale lock of a crashed run (pid {holder.pid}" in rest


def test_killed_run_resumes_into_the_same_mlflow_run_with_the_same_outputs(tmp_path, mlflow_server, data):
    from mlflow import MlflowClient

    from pretrain.checkpoint import list_steps

    (tmp_path / "a").mkdir()
    killed = pipeline(tmp_path / "a", "killed", {"finance": data["finance"]})
    died = dapt_run(killed, mlflow_server.uri, env={"DAPT_FAULT_KILL_AT_STEP": "6"})
    assert died.returncode != 0 and stage_lines(died.stderr).get("plan") == "done"
    resumed = dapt_run(killed, mlflow_server.uri)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "(resumed)" in resumed.stderr
    states = stage_lines(resumed.stderr)
    assert states["train"] == "done" and all(states[s] == "cached" for s in STAGES[:5])
    client = MlflowClient(mlflow_server.uri)
    parents = parent_runs(client, "killed")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    kids = children(client, parents[0].info.run_id)
    assert sorted(k.data.tags["dapt_stage"] for k in kids) == sorted(STAGES), "a stage run was duplicated"
    train_child = next(k for k in kids if k.data.tags["dapt_stage"] == "train")
    steps = [m.step for m in client.get_metric_history(train_child.info.run_id, "loss")]
    assert len(steps) == len(set(steps)), "a training step was logged twice"

    # the same pipeline, never interrupted, in another work directory: the same bytes
    (tmp_path / "b").mkdir()
    whole = pipeline(tmp_path / "b", "whole", {"finance": data["finance"]})
    assert dapt_run(whole, mlflow_server.uri).returncode == 0
    a = next(p for p in (tmp_path / "a" / "work" / "killed" / "train").iterdir() if p.is_dir())
    b = next(p for p in (tmp_path / "b" / "work" / "whole" / "train").iterdir() if p.is_dir())
    last_a, last_b = list_steps(a / "checkpoints")[-1], list_steps(b / "checkpoints")[-1]
    assert last_a.name == last_b.name
    assert (last_a / "model.safetensors").read_bytes() == (last_b / "model.safetensors").read_bytes()


def test_unreachable_tracking_server_is_one_line(tmp_path, data):
    from pretrain_support import free_port

    config = pipeline(tmp_path, "offline", {"finance": data["finance"]})
    uri = f"http://127.0.0.1:{free_port()}"
    run = dapt_run(config, uri, timeout=120)
    assert run.returncode == 2
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and uri in lines[0] and "Traceback" not in run.stderr, run.stderr
