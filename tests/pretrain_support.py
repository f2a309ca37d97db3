"""Inputs and services for the pretraining tests: the real chain on a finance subset
(``run_clean`` -> ``train_tokenizer`` -> ``run_tokenize``), a tiny model's flags, the
``dapt`` CLI as a subprocess (torchrun needs real processes), and a real ``mlflow server``
on 127.0.0.1."""

from __future__ import annotations

import gzip
import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from conftest import FINANCE, REPO

DAPT = [sys.executable, "-m", "pipelines.cli"]
#: 2 layers, d_model 64, 64-token context: ~0.26M parameters with a 1,000-piece vocabulary.
TINY = ["--n-layer", "2", "--d-model", "64", "--n-head", "1", "--seq-len", "64"]
SUBSET_DOCS = 2000
VOCAB = 1000


@dataclass(frozen=True)
class PretrainInputs:
    clean: Path
    bundle: Path
    tokens: Path


def make_pretrain_inputs(root: Path) -> PretrainInputs:
    from pipelines.clean import run_clean
    from pipelines.config import parse_config
    from pipelines.tokenize import run_tokenize
    from tokenizer.config import TokenizeConfig, TokenizerConfig
    from tokenizer.train import train_tokenizer

    subset = root / "finance.jsonl.gz"
    with gzip.open(FINANCE, "rt", encoding="utf-8") as f, gzip.open(subset, "wt", encoding="utf-8") as g:
        for _, line in zip(range(SUBSET_DOCS), f):
            g.write(line)
    corpus = {"name": "finance", "path": str(subset), "format": "jsonl.gz", "domain": "finance",
              "id_field": "id", "title_field": "title"}
    run_clean(parse_config({"corpora": [corpus]}), str(root / "clean"), show_progress=False)
    train_tokenizer([str(root / "clean")], str(root / "bundle"),
                    TokenizerConfig(vocab_size=VOCAB, model_type="bpe", num_threads=2))
    # 5 % held out: ~90 validation documents, enough windows for every evaluation.
    run_tokenize([str(root / "clean")], str(root / "bundle"), str(root / "tokens"),
                 TokenizeConfig(val_fraction=0.05), show_progress=False)
    return PretrainInputs(root / "clean", root / "bundle", root / "tokens")


def train_args(inputs: PretrainInputs, output: Path, *extra: str) -> list[str]:
    return ["train", "--tokens", str(inputs.tokens), "--tokenizer", str(inputs.bundle), *TINY,
            "--output", str(output), "--no-mlflow", "--warmup-steps", "2", "--lr", "3e-3",
            "--eval-sequences", "32", "--micro-batch", "4", *extra]


def dapt_env(env: dict | None = None) -> dict:
    """One torch thread per process, as torchrun gives each worker, so 1- and 2-process
    runs do the same arithmetic."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}


def dapt(args: list[str], env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run the CLI in a fresh process."""
    return subprocess.run([*DAPT, *args], cwd=REPO, env=dapt_env(env), capture_output=True, text=True, timeout=timeout)


def start_dapt(args: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    """Start the CLI in a fresh process that runs beside this one; its stdout and stderr
    go to ``log`` (a pipe nobody reads could fill and stall it)."""
    with open(log, "w") as out:
        return subprocess.Popen([*DAPT, *args], cwd=REPO, env=dapt_env(env), stdout=out, stderr=subprocess.STDOUT)


def losses(rundir: Path) -> dict[int, float]:
    from pretrain.loss_curve import read_metrics

    train, _ = read_metrics(rundir / "metrics.jsonl")
    return {step: record["loss"] for step, record in train.items()}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a sqlite store in ``root``; can be killed and
    started again on the same port and store (the outage test)."""

    def __init__(self, root: Path):
        self.root, self.port = root, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        log = open(self.root / "server.log", "ab")
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port),
             "--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
             "--artifacts-destination", str(self.root / "artifacts")],
            env=env, stdout=log, stderr=log, start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"mlflow server did not start; see {self.root / 'server.log'}")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait()


def running_mlflow_server(tmp_path_factory):
    """The body of a test module's server fixture: ``yield from running_mlflow_server(...)``."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    try:
        yield server
    finally:
        server.kill()


def metric_steps(client, run_id: str, key: str) -> list[int]:
    """The steps of a metric's MLflow history, in order, each as often as it was logged."""
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def jsonl_steps(rundir: Path) -> tuple[list[int], list[int]]:
    """The steps of ``metrics.jsonl``'s training and evaluation records, as written (a
    repeat shows)."""
    import json

    train, val = [], []
    for line in (rundir / "metrics.jsonl").read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        (val if "val_loss" in record else train).append(record["step"])
    return train, val
