"""Shared fixtures: the real corpora beside the checkout, and generated bad input."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DAPT_SHARED", REPO.parent / "shared"))
CORPORA = SHARED / "corpora"
FINANCE = CORPORA / "finance" / "sample.jsonl.gz"
MEDICAL = CORPORA / "medical" / "sample.jsonl.gz"


def read_jsonl_gz(path: Path, limit: int | None = None) -> list[dict]:
    docs = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            docs.append(json.loads(line))
            if limit is not None and len(docs) >= limit:
                break
    return docs


@pytest.fixture(scope="session")
def finance_docs() -> list[dict]:
    return read_jsonl_gz(FINANCE)


@pytest.fixture(scope="session")
def medical_docs() -> list[dict]:
    return read_jsonl_gz(MEDICAL)


def clean_subset(root: Path, subsets) -> Path:
    """Run the real cleaning job on ``(name, path, limit, keep)`` subsets of the samples,
    each its own corpus and domain; returns the output folder."""
    from pipelines.clean import run_clean
    from pipelines.config import parse_config

    corpora = []
    for name, path, limit, keep in subsets:
        docs = [d for d in read_jsonl_gz(path, limit) if keep(d)]
        subset = root / f"{name}.jsonl.gz"
        subset.write_bytes(gzip.compress("\n".join(json.dumps(d, ensure_ascii=False) for d in docs).encode(), mtime=0))
        corpora.append({"name": name, "path": str(subset), "format": "jsonl.gz", "domain": name,
                        "id_field": "id", "title_field": "title"})
    out = root / "clean"
    run_clean(parse_config({"corpora": corpora}), str(out), show_progress=False)
    return out


def _any(doc: dict) -> bool:
    return True


@pytest.fixture(scope="session")
def clean_subset_for_tokenizer(tmp_path_factory) -> Path:
    """One real cleaning run for the tokenizer tests: the first 2,000 documents of finance
    and of medical, and the general documents under 300k characters (all speeches and 6
    books; the larger books cost most of the cleaning time and the web profile drops
    most of them anyway), each corpus its own domain. Returns the output folder."""
    return clean_subset(tmp_path_factory.mktemp("clean-subset-for-tokenizer"), [
        ("finance", FINANCE, 2000, _any),
        ("medical", MEDICAL, 2000, _any),
        ("general", CORPORA / "general" / "sample.jsonl.gz", None, lambda d: len(d["text"]) < 300_000),
    ])


@pytest.fixture(scope="session")
def pretrain_inputs(tmp_path_factory):
    """Issue 6: cleaned finance subset, a 1,000-piece BPE bundle and its token shards."""
    from pretrain_support import make_pretrain_inputs

    return make_pretrain_inputs(tmp_path_factory.mktemp("pretrain"))


@pytest.fixture(scope="session")
def clean_subset_for_validation(tmp_path_factory) -> Path:
    """One real cleaning run for the validation tests: the first 1,000 documents of
    finance and of medical. Returns the output folder; tests copy it before planting
    defects."""
    return clean_subset(tmp_path_factory.mktemp("clean-subset-for-validation"), [
        ("finance", FINANCE, 1000, _any),
        ("medical", MEDICAL, 1000, _any),
    ])


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 (sqlite store in tmp) for one test module."""
    from pretrain_support import MlflowServer

    server = MlflowServer(tmp_path_factory.mktemp("mlflow"))
    server.start()
    yield server
    server.kill()


def debian_tool_or_skip(binary: str, package: str, *candidates: Path, recommends: bool = True) -> str:
    """A system tool the tests drive (``chromium``, ``shellcheck``, ``systemd-analyze``): the
    first executable of ``candidates``, else the one on PATH, else installed with apt;
    skips the test, naming the failed command, only when that install fails."""
    import shutil
    import subprocess

    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = shutil.which(binary)
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", *([] if recommends else ["--no-install-recommends"]), package]
    for command in (["apt-get", "update"], install):
        try:
            subprocess.run(command, env=env, check=True, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.SubprocessError) as err:
            detail = (getattr(err, "stderr", "") or str(err)).strip().splitlines()[-1:]
            pytest.skip(f"{binary} is not installed and `{' '.join(command)}` failed: {' '.join(detail)}")
    return shutil.which(binary) or pytest.skip(f"`apt-get install {package}` gave no {binary}")
