"""Pipelines for the ``dapt run`` tests: subsets of the shared samples, a small pipeline
YAML with a tiny model, ``dapt run`` as a subprocess, and MLflow lookups of its runs."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
from pathlib import Path

import yaml

from conftest import REPO, read_jsonl_gz
from pretrain_support import DAPT


def write_subset(path: Path, source: Path, start: int, stop: int) -> Path:
    docs = read_jsonl_gz(source, stop)[start:]
    path.write_bytes(gzip.compress("\n".join(json.dumps(d, ensure_ascii=False) for d in docs).encode(), mtime=0))
    return path


def pipeline(root: Path, name: str, corpora: dict[str, Path], **sections) -> Path:
    config = {
        "corpora": [{"name": n, "path": str(p), "format": "jsonl.gz", "domain": n, "id_field": "id",
                     "title_field": "title"} for n, p in corpora.items()],
        "tokenizer": {"vocab_size": 1000, "model_type": "bpe", "num_threads": 2},
        "tokenize": {"val_fraction": 0.05},
        "plan": {"flops": 2e13, "seq_len": 64},
        "train": {"micro_batch": 4, "lr": 3e-3, "warmup_steps": 2, "max_steps": 12, "eval_every": 4,
                  "eval_sequences": 16, "checkpoint_every": 4, "log_every": 4, "system_metrics_every": 1.0},
        "register": {"name": f"dapt-{name}"},
        "run": {"name": name, "workdir": str(root / "work" / name)},
        **sections,
    }
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def dapt_run(yaml_path: Path, uri: str, *extra: str, env: dict | None = None, timeout: float = 400):
    full_env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([*DAPT, "run", str(yaml_path), "--tracking-uri", uri, "--quiet", *extra], cwd=REPO,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def parent_runs(client, name: str):
    experiment = client.get_experiment_by_name("dapt")
    return client.search_runs([experiment.experiment_id], f"tags.dapt_pipeline = '{name}' and tags.dapt_kind = 'pipeline'",
                              order_by=["attributes.start_time ASC"])


def children(client, parent_id: str):
    experiment = client.get_experiment_by_name("dapt")
    return client.search_runs([experiment.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")

