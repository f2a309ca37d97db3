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
