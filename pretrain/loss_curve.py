"""The loss-curve figure of a run, from ``RUNDIR/metrics.jsonl``."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: Path) -> tuple[dict[int, dict], dict[int, dict]]:
    """``(train, val)`` records by step; a resumed run repeats the steps after its last
    checkpoint, and the later record (the one that led to the final weights) wins."""
    train, val = {}, {}
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        (val if "val_loss" in record else train)[record["step"]] = record
    return train, val


def plot_losses(metrics: Path, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    train, val = read_metrics(metrics)
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = sorted(train)
    ax.plot([train[s]["tokens"] for s in steps], [train[s]["loss"] for s in steps], label="train", lw=1)
    steps = sorted(val)
    ax.plot([val[s]["tokens"] for s in steps], [val[s]["val_loss"] for s in steps], "o-", label="validation")
    ax.set_xlabel("tokens")
    ax.set_ylabel("loss (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)
