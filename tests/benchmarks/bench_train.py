"""Benchmark of ``dapt train``: tokens/s against a bare PyTorch loop with the same model,
batch and precision, MLflow's share of step time, and MFU on a GPU.

    .venv/bin/python tests/benchmarks/bench_train.py                       # CPU preset
    .venv/bin/python tests/benchmarks/bench_train.py --preset gpu-125m     # on a GPU machine
    .venv/bin/python tests/benchmarks/bench_train.py --preset gpu-350m --steps 60

Input: ``--tokens`` and ``--tokenizer`` (a ``dapt tokenize`` output and its bundle); when
omitted, the test chain is built first (2,000 finance documents, 1,000-piece BPE; not timed).
The vocabulary of the presets is the tokens' own.

Each measurement is its own child process (one torch thread per process on CPU, as
torchrun gives each worker):

* ``dapt``: ``dapt train`` with tracking off; tokens/s is the median of its logged windows
  after the first (which holds start-up and, with ``--compile``, compilation);
* ``dapt+mlflow``: the same against a local ``mlflow server`` (127.0.0.1, sqlite). MLflow's
  share of step time is measured inside the run (``summary.json`` ``tracking_share``: the
  loop's time in ``log_metrics`` plus the flush thread's CPU time, over the training time),
  and also shown as ``1 - tokens/s(dapt+mlflow) / tokens/s(dapt)``, which on a shared
  2-core machine is mostly noise;
* ``bare``: a plain loop over the same :class:`pretrain.model.GPT`, AdamW settings, batch,
  precision and compile choice, reading random windows of the same memmapped shard
  (nanoGPT's ``get_batch``); tokens/s of the steps after the warm-up ones.

The three are interleaved ``--repeats`` times and the best of each is reported: on a
shared machine other jobs only ever slow a run down.

GPU presets run bf16 autocast and ``torch.compile`` and report MFU with the planner's
peak table (:mod:`pretrain.hardware`); the ratio target is >= 0.95x, the MFU target >= 45 %.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

PRESETS = {
    # d_model 128, 4 layers: big enough that a CPU step is ~0.1 s, small enough for 2 cores.
    "cpu": {"n_layer": 4, "d_model": 128, "n_head": 2, "seq_len": 128, "micro_batch": 8, "precision": "fp32",
            "compile": False},
    # ~125M and ~350M with a 32k vocabulary in GPT-3's table (Brown et al. 2020, Table 2.1);
    # with a smaller vocabulary the counts are lower, the blocks the same.
    "gpu-125m": {"n_layer": 12, "d_model": 768, "n_head": 12, "seq_len": 1024, "micro_batch": 16,
                 "precision": "bf16", "compile": True},
    "gpu-350m": {"n_layer": 24, "d_model": 1024, "n_head": 16, "seq_len": 1024, "micro_batch": 8,
                 "precision": "bf16", "compile": True},
}


def _env() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run_dapt(tokens: Path, bundle: Path, preset: dict, steps: int, out: Path, mlflow_uri: str | None) -> dict:
    args = [
        sys.executable, "-m", "pipelines.cli", "train", "--tokens", str(tokens), "--tokenizer", str(bundle),
        "--output", str(out), "--n-layer", str(preset["n_layer"]), "--d-model", str(preset["d_model"]),
        "--n-head", str(preset["n_head"]), "--seq-len", str(preset["seq_len"]),
        "--micro-batch", str(preset["micro_batch"]), "--precision", preset["precision"],
        "--max-steps", str(steps), "--log-every", str(max(1, steps // 10)), "--eval-every", str(steps),
        "--eval-sequences", "8", "--checkpoint-every", str(steps), "--warmup-steps", "10",
    ]
    args += ["--compile"] if preset["compile"] else []
    args += ["--tracking-uri", mlflow_uri, "--register-as", ""] if mlflow_uri else ["--no-mlflow"]
    result = subprocess.run(args, env=_env(), capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"dapt train failed:\n{result.stderr[-3000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    windows = [r for r in records if "tokens_per_s" in r][1:]
    summary = json.loads((out / "summary.json").read_text())
    return {
        "tracking_share": summary.get("tracking_share"),
        "tokens_per_s": statistics.median(r["tokens_per_s"] for r in windows),
        "mfu": statistics.median(r["mfu"] for r in windows) if windows and "mfu" in windows[0] else None,
        "memory_gb": windows[-1].get("memory_gb") if windows else None,
    }


def bare_loop(tokens: str, preset: dict, steps: int, warmup: int) -> dict:
    """The loop without anything of dapt's around it (runs in the child process)."""
    import numpy as np
    import torch

    from pretrain.data import load_manifest
    from pretrain.model import GPT, causal_lm_loss
    from pretrain.shape import ModelShape, ffn_hidden_for

    manifest = load_manifest(tokens)
    data = np.memmap(manifest.shards("train")[0], dtype=manifest.dtype, mode="r")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    shape = ModelShape(n_layer=preset["n_layer"], d_model=preset["d_model"], n_head=preset["n_head"],
                       vocab_size=manifest.vocab_size, seq_len=preset["seq_len"],
                       ffn_hidden=ffn_hidden_for(preset["d_model"]))
    torch.manual_seed(0)
    model = GPT(shape).to(device)
    if preset["compile"]:
        for block in model.blocks:
            block.compile()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1,
                                  fused=device.type == "cuda")
    rng = np.random.default_rng(0)
    b, t = preset["micro_batch"], shape.seq_len
    bf16 = preset["precision"] == "bf16"

    def step() -> None:
        starts = rng.integers(0, len(data) - t - 1, b)
        rows = torch.from_numpy(np.stack([data[s : s + t + 1].astype(np.int64) for s in starts])).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = causal_lm_loss(model(rows[:, :-1]), rows[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return {"tokens_per_s": steps * b * t / (time.perf_counter() - started)}


def run_bare(tokens: Path, preset: dict, steps: int) -> dict:
    warmup = max(2, steps // 10)
    code = (f"import json, sys; sys.path[:0] = {[str(REPO), str(REPO / 'tests')]!r}; "
            "from benchmarks.bench_train import bare_loop; "
            f"print(json.dumps(bare_loop({str(tokens)!r}, {preset!r}, {steps - warmup}, {warmup})))")
    result = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"bare loop failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=PRESETS, default="cpu")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--tokens", type=Path)
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs of each; the best counts")
    parser.add_argument("--no-mlflow", action="store_true", help="skip the MLflow measurement")
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        root = Path(tmp)
        if args.tokens is None:
            from pretrain_support import make_pretrain_inputs

            inputs = make_pretrain_inputs(root)
            args.tokens, args.tokenizer = inputs.tokens, inputs.bundle
        server = None
        if not args.no_mlflow:
            from pretrain_support import MlflowServer

            (root / "mlflow").mkdir()
            server = MlflowServer(root / "mlflow")
            server.start()
        runs = {
            "bare": lambda i: run_bare(args.tokens, preset, args.steps),
            "dapt": lambda i: run_dapt(args.tokens, args.tokenizer, preset, args.steps, root / f"dapt{i}", None),
        }
        if server:
            runs["dapt+mlflow"] = lambda i: run_dapt(
                args.tokens, args.tokenizer, preset, args.steps, root / f"tracked{i}", server.uri
            )
        # Interleaved repeats, best of each: other jobs on a shared machine only ever slow a run down.
        results: dict[str, list[dict]] = {name: [] for name in runs}
        try:
            for i in range(args.repeats):
                for name, run in runs.items():
                    results[name].append(run(i))
        finally:
            if server:
                server.kill()
        rows = {name: max(found, key=lambda r: r["tokens_per_s"]) for name, found in results.items()}
    bare = rows["bare"]["tokens_per_s"]
    print(f"preset {args.preset}: {preset}, {args.steps} steps, best of {args.repeats}")
    print("| run | tokens/s | vs bare | MFU |")
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        mfu = f"{row['mfu']:.1%}" if row.get("mfu") else "n/a"
        print(f"| {name} | {row['tokens_per_s']:,.0f} | {row['tokens_per_s'] / bare:.3f}x | {mfu} |")
    if "dapt+mlflow" in rows:
        share = 1 - rows["dapt+mlflow"]["tokens_per_s"] / rows["dapt"]["tokens_per_s"]
        shares = [r["tracking_share"] for r in results["dapt+mlflow"]]
        print(f"\nMLflow share of step time: measured in the run {max(shares):.3%} (worst of {len(shares)}: "
              f"loop time in log_metrics + flush-thread CPU, over training time); "
              f"from throughput {share:.1%} (noise of a shared machine included)")


if __name__ == "__main__":
    main()
