"""Loss baseline (as torchtitan keeps one): a fixed-seed tiny run on fixed synthetic tokens
must reproduce the loss sequence in ``tests/assets/loss_baseline.json``. A refactor that
changes no arithmetic passes; a change to the model, initialisation, optimizer, schedule
or data order fails it. After an intended numeric change, regenerate the file with
``DAPT_UPDATE_LOSS_BASELINE=1 pytest tests/integration/test_train_baseline.py`` and say
why in the commit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from pretrain_support import dapt, losses

BASELINE = Path(__file__).resolve().parents[1] / "assets" / "loss_baseline.json"
ARGS = ["--n-layer", "2", "--d-model", "64", "--n-head", "2", "--seq-len", "32", "--micro-batch", "4",
        "--global-batch", "8", "--lr", "1e-2", "--warmup-steps", "3", "--max-steps", "12", "--eval-every", "6",
        "--eval-sequences", "16", "--seed", "1234", "--no-mlflow"]


def write_synthetic_tokens(tokdir: Path, tokenizer_sha256: str, vocab: int) -> None:
    """A learnable fixed stream: each id is ``(3 * previous + d) mod 97`` with ``d`` drawn
    from {0, 1, 2}, every 50th token an EOS (id 2), in the ``dapt tokenize`` layout."""
    rng = np.random.default_rng(1234)
    shards = []
    for split, n in (("train", 40_000), ("val", 4_000)):
        tokens = np.empty(n, dtype=np.uint16)
        tokens[0] = 10
        steps = rng.integers(0, 3, n)
        for i in range(1, n):
            tokens[i] = 3 + (3 * int(tokens[i - 1]) + int(steps[i])) % 97
        tokens[::50] = 2
        (tokdir / split).mkdir(parents=True)
        path = tokdir / split / "shard-00000-of-00001.bin"
        tokens.tofile(path)
        shards.append({"split": split, "path": f"{split}/{path.name}", "tokens": n})
    manifest = {"tokenizer_sha256": tokenizer_sha256, "vocab_size": vocab, "dtype": "uint16", "shards": shards}
    (tokdir / "manifest.json").write_text(json.dumps(manifest))


def test_fixed_seed_run_reproduces_the_loss_baseline(pretrain_inputs, tmp_path):
    bundle = json.loads((pretrain_inputs.bundle / "manifest.json").read_text())
    write_synthetic_tokens(tmp_path / "tokens", bundle["sha256"], bundle["vocab_size"])
    out = tmp_path / "run"
    result = dapt(["train", "--tokens", str(tmp_path / "tokens"), "--tokenizer", str(pretrain_inputs.bundle),
                   "--output", str(out), *ARGS])
    assert result.returncode == 0, result.stderr[-3000:]
    got = [losses(out)[step] for step in range(1, 13)]
    if os.environ.get("DAPT_UPDATE_LOSS_BASELINE"):
        BASELINE.write_text(json.dumps({"args": ARGS, "vocab_size": bundle["vocab_size"], "losses": got}, indent=2) + "\n")
    expected = json.loads(BASELINE.read_text())
    assert expected["args"] == ARGS
    # Equal up to the last bits that differ between CPU kernels (AVX2 vs AVX-512 sums).
    assert got == pytest.approx(expected["losses"], rel=2e-5)
    assert got[-1] < got[0] - 1.0
