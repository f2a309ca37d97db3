"""The real chain on the finance sample: clean -> tokenizer -> tokens -> train -> generate."""

from __future__ import annotations

import json

import pytest

from pretrain_support import dapt, losses, train_args

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_run(pretrain_inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    result = dapt(train_args(pretrain_inputs, out, "--max-steps", "40", "--eval-every", "10", "--log-every", "10"))
    assert result.returncode == 0, result.stderr[-3000:]
    return out, result


def test_loss_goes_down_and_the_summary_says_why_it_stopped(tiny_run):
    out, result = tiny_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stop_reason"] == "max_steps" and summary["steps"] == 40
    assert summary["tokens_seen"] == 40 * 4 * 64
    loss = losses(out)
    assert sorted(loss) == list(range(1, 41))
    assert loss[1] > 6.8  # ~ln(1000) at initialisation
    assert max(loss[s] for s in range(36, 41)) < loss[1] - 0.8
    vals = [json.loads(line)["val_loss"] for line in (out / "metrics.jsonl").read_text().splitlines() if "val_loss" in line]
    assert len(vals) == 4 and vals[-1] < vals[0] - 0.3
    assert summary["best_val_loss"] == min(vals) and summary["best_step"] == 40
    assert "step 40/40 | loss" in result.stderr and "tok/s" in result.stderr and "ETA" in result.stderr
    assert (out / "loss.png").stat().st_size > 10_000


def test_generate_and_score_with_the_frozen_tokenizer(tiny_run, pretrain_inputs, tmp_path):
    from pipelines.output import read_table

    out, _ = tiny_run
    result = dapt(["generate", "--model", str(out), "--prompt", "Net income rose", "--max-tokens", "16", "--seed", "1"])
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("Net income rose") and len(line) > len("Net income rose") + 5
    kept = read_table(str(pretrain_inputs.clean), "kept").slice(0, 30).to_pylist()
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": d["id"], "text": d["text"]}) + "\n" for d in kept))
    scored = dapt(["score", "--model", str(out), str(docs)])
    assert scored.returncode == 0, scored.stderr
    rows = [json.loads(line) for line in scored.stdout.splitlines()]
    assert [r["id"] for r in rows] == [d["id"] for d in kept]
    assert all(r["tokens"] >= 2 and 0 < r["loss"] < 8 for r in rows)
    assert "30 documents" in scored.stderr
    assert all(abs(r["perplexity"] - 2.718281828 ** r["loss"]) < 1e-6 * r["perplexity"] for r in rows)


def test_another_tokenizer_is_refused(tiny_run, pretrain_inputs, tmp_path):
    from tokenizer.config import TokenizerConfig
    from tokenizer.train import train_tokenizer

    other = tmp_path / "other-bundle"
    train_tokenizer([str(pretrain_inputs.clean)], str(other), TokenizerConfig(vocab_size=800, model_type="bpe", num_threads=2))
    out, _ = tiny_run
    result = dapt(["generate", "--model", str(out), "--tokenizer", str(other), "--prompt", "x"])
    assert result.returncode == 2
    assert "is not the one the model was trained with" in result.stderr and "Traceback" not in result.stderr
    result = dapt(train_args(pretrain_inputs, tmp_path / "run", "--max-steps", "2", "--tokenizer", str(other)))
    assert result.returncode == 2
    assert "tokens were made with tokenizer sha256" in result.stderr and "Traceback" not in result.stderr


def test_a_tampered_checkpoint_is_refused(tiny_run, tmp_path):
    import shutil

    out, _ = tiny_run
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    weights = copy / "checkpoints" / "best" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x40
    weights.write_bytes(bytes(data))
    result = dapt(["generate", "--model", str(copy), "--prompt", "x"])
    assert result.returncode == 2
    assert "model.safetensors: sha256 differs from the manifest" in result.stderr


def test_bad_options_are_one_line(pretrain_inputs, tmp_path):
    result = dapt(train_args(pretrain_inputs, tmp_path / "r", "--parallelism", "tp"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = dapt(train_args(pretrain_inputs, tmp_path / "r", "--max-steps", "2", "--global-batch", "6"))
    assert result.returncode == 2 and "not a multiple of micro_batch 4" in result.stderr
    result = dapt(["train", "--tokens", str(pretrain_inputs.tokens), "--tokenizer", str(pretrain_inputs.bundle),
                   "--output", str(tmp_path / "r"), "--max-steps", "2", "--no-mlflow"])
    assert result.returncode == 2 and "give exactly one of plan" in result.stderr


def test_a_plan_gives_the_shape_and_the_budget_stops_the_run(pretrain_inputs, tmp_path):
    plan = dapt(["plan", "--params", "300000", "--tokens-manifest", str(pretrain_inputs.tokens / "manifest.json"),
                 "--seq-len", "64", "--json"])
    assert plan.returncode == 0, plan.stderr
    (tmp_path / "PLAN.json").write_text(plan.stdout)
    out = tmp_path / "run"
    args = ["train", "--tokens", str(pretrain_inputs.tokens), "--tokenizer", str(pretrain_inputs.bundle),
            "--plan", str(tmp_path / "PLAN.json"), "--output", str(out), "--no-mlflow", "--micro-batch", "4",
            "--token-budget", "1500", "--eval-every", "100", "--eval-sequences", "16"]
    result = dapt(args)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"] == json.loads(plan.stdout)["model"]["params_exact"]
    # 1,500 tokens at 4 x 64 per step: 6 steps, the last one crossing the budget.
    assert summary["stop_reason"] == "budget" and summary["steps"] == 6 and summary["tokens_seen"] == 1536
