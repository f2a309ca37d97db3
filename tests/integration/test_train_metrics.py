"""``metrics.jsonl`` on resume: the records after the resumed checkpoint go (they are
trained and written again), as does a line a kill cut short; MLflow gets the same
numbers as the file."""

from __future__ import annotations

import json


def test_a_resume_keeps_the_records_up_to_its_checkpoint(tmp_path):
    from pretrain.train import metrics_through, tracked_metrics

    path = tmp_path / "metrics.jsonl"
    records = []
    for step in range(1, 7):
        records.append({"step": step, "loss": 7.0 - step / 10, "lr": 1e-3, "grad_norm": 0.5, "tokens": 256 * step})
        if step % 3 == 0:
            records.append({"step": step, "val_loss": 6.9 - step / 10, "lr_scale": 1.0, "tokens": 256 * step})
    lines = [json.dumps(r) for r in records]
    path.write_text("".join(line + "\n" for line in lines) + '{"step": 7, "loss": 6.', encoding="utf-8")

    kept = metrics_through(path, 4)
    assert kept == lines[:5]  # steps 1, 2, 3, 3 (evaluation), 4
    assert path.read_text(encoding="utf-8") == "".join(line + "\n" for line in lines[:5])
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
    inode = path.stat().st_ino
    assert metrics_through(path, 4) == kept and path.stat().st_ino == inode  # nothing to drop: not rewritten
    assert metrics_through(path, 0) == [] and path.read_text(encoding="utf-8") == ""
    assert metrics_through(tmp_path / "absent.jsonl", 3) == []

    assert tracked_metrics(records[0]) == {"loss": 6.9, "lr": 1e-3, "grad_norm": 0.5, "tokens": 256}
    # The evaluation's tokens are its step's training record's: MLflow gets them once.
    assert tracked_metrics(records[3]) == {"val_loss": records[3]["val_loss"], "lr_scale": 1.0}
