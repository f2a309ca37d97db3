"""Benchmark of the tokenizer stage: training time and peak RSS, and the tokenize job's
throughput against SentencePiece's own batched, multi-threaded encode.

    .venv/bin/python tests/benchmarks/bench_tokenizer.py [--clean DIR] [--scales 1 4] [--count-scales 1 4 16]
        [--vocab-size 32000] [--model-type unigram]

Input: the kept documents of the finance + medical samples (``--clean``: an existing
``dapt corpus clean`` output of ``examples/corpora.yaml``; else the job is run first, not
timed), repeated ``scale`` times with distinct ids. The copies are exact duplicates:
SentencePiece's EM works on distinct words, so 4x copies cost training less than 4x new
text would, while loading and the suffix array do grow 4x (peak RSS shows it). Each measurement runs in its own child
process, so its peak RSS and CPU time are its own:

* ``train xN``: ``dapt tokenizer train`` with the default options and ``--vocab-size``
  (``input_sentence_size`` 2M holds every sentence at 1x and 4x);
* ``train xN capped``: the same at the largest scale with ``input_sentence_size`` set
  to the 1x sample's sentence count: memory stays at the 1x level however large the input;
* ``tokenize xN``: ``pipelines.tokenize.run_tokenize`` (embedded in-process runner) with
  the 1x bundle: read, encode, split, shards, document table, manifest;
* ``spm xN``: the same texts encoded by ``SentencePieceProcessor.encode`` in batches of
  the job's ``batch_size`` on one reused thread pool of all cores (what the job's encoder
  calls), texts already in memory; the Parquet read is timed on its own. The job's
  throughput over this one is the "tokenize / spm" ratio (target >= 0.9), by wall time
  and by CPU time (the job's whole process, imports and Beam included, against the
  encode calls alone).

Wall and CPU seconds are both reported: on a shared 2-core machine CPU time is steadier.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def make_input(clean: Path, root: Path, scale: int) -> Path:
    """``clean``'s kept documents repeated ``scale`` times with distinct ids."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from pipelines.output import read_table

    kept = read_table(str(clean), "kept")
    copies = [kept] + [
        kept.set_column(0, "id", pc.binary_join_element_wise(kept.column("id"), pa.scalar(f"#{k}"), ""))
        for k in range(1, scale)
    ]
    folder = root / f"kept-x{scale}" / "kept"
    folder.mkdir(parents=True)
    pq.write_table(pa.concat_tables(copies), folder / "part-00000-of-00001.parquet", compression="zstd")
    return folder


def child(mode: str, spec_json: str) -> None:
    spec = json.loads(spec_json)
    start = time.perf_counter()
    result: dict = {}
    if mode == "train":
        from tokenizer.config import TokenizerConfig
        from tokenizer.train import train_tokenizer

        config = TokenizerConfig(vocab_size=spec["vocab_size"], model_type=spec["model_type"],
                                 input_sentence_size=spec["input_sentence_size"])
        manifest = train_tokenizer([spec["kept"]], spec["bundle"], config)
        result = {"sentences": manifest["sample"]["sentences"], "sample_mb": manifest["sample"]["bytes"] / 1e6,
                  "sample_s": manifest["seconds"]["sample"], "train_s": manifest["seconds"]["train"]}
    elif mode == "tokenize":
        from pipelines.tokenize import run_tokenize

        manifest = run_tokenize([spec["kept"]], spec["bundle"], spec["out"], show_progress=False)
        result = {"tokens": manifest["train_tokens"] + manifest["val_tokens"],
                  "documents": manifest["unique_documents"]}
    else:
        import pyarrow.parquet as pq

        from tokenizer.bundle import load_tokenizer
        from tokenizer.config import TokenizeConfig

        batch = TokenizeConfig().batch_size
        tokenizer = load_tokenizer(spec["bundle"])
        read_start = time.perf_counter()
        texts = pq.read_table(spec["kept"], columns=["text"]).column("text").to_pylist()
        encode_start, cpu_start = time.perf_counter(), _cpu()
        pool = tokenizer.thread_pool()
        tokens = 0
        for i in range(0, len(texts), batch):
            tokens += sum(a.size for a in tokenizer.encode(texts[i:i + batch], thread_pool=pool))
        end, cpu_end = time.perf_counter(), _cpu()
        # Plus one EOS per document, as the job counts.
        result = {"tokens": tokens + len(texts), "documents": len(texts), "read_s": encode_start - read_start,
                  "encode_s": end - encode_start, "encode_cpu_s": cpu_end - cpu_start,
                  "text_mb": sum(len(t.encode()) for t in texts) / 1e6}
    result["seconds"] = time.perf_counter() - start
    result["cpu_seconds"] = _cpu()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def _cpu() -> float:
    """User + system seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(mode: str, **spec) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, json.dumps(spec)],
                         capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"{mode} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=Path, help="a `dapt corpus clean` output of examples/corpora.yaml")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4], help="input sizes for training")
    parser.add_argument("--count-scales", type=int, nargs="+",
                        help="input sizes for token counting (default: --scales)")
    parser.add_argument("--vocab-size", type=int, default=32000)
    parser.add_argument("--model-type", default="unigram", choices=("unigram", "bpe"))
    parser.add_argument("--child", nargs=2, metavar=("MODE", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    with tempfile.TemporaryDirectory(prefix="bench-tokenizer-") as tmp:
        root = Path(tmp)
        clean = args.clean
        if clean is None:
            from pipelines.clean import run_clean
            from pipelines.config import load_config

            clean = root / "clean"
            run_clean(load_config(REPO / "examples/corpora.yaml"), str(clean), show_progress=False)
        scales = sorted(args.scales)
        count_scales = sorted(args.count_scales or scales)
        kept = {scale: make_input(clean, root, scale) for scale in sorted(set(scales) | set(count_scales))}
        common = {"vocab_size": args.vocab_size, "model_type": args.model_type}
        train, first_bundle = {}, None
        for scale in scales:
            bundle = root / f"bundle-x{scale}"
            train[scale] = measure("train", kept=str(kept[scale]), bundle=str(bundle),
                                   input_sentence_size=2_000_000, **common)
            first_bundle = first_bundle or bundle
            print(f"  done: train x{scale} in {train[scale]['seconds']:.1f}s", file=sys.stderr, flush=True)
        top = scales[-1]
        capped = measure("train", kept=str(kept[top]), bundle=str(root / "bundle-capped"),
                         input_sentence_size=train[scales[0]]["sentences"], **common)
        print(f"  done: train x{top} capped in {capped['seconds']:.1f}s", file=sys.stderr, flush=True)
        job, bare = {}, {}
        for scale in count_scales:
            job[scale] = measure("tokenize", kept=str(kept[scale]), bundle=str(first_bundle),
                                 out=str(root / f"tok-x{scale}"))
            bare[scale] = measure("spm", kept=str(kept[scale]), bundle=str(first_bundle))
            print(f"  done: tokenize x{scale} in {job[scale]['seconds']:.1f}s", file=sys.stderr, flush=True)

    print(f"\ntraining ({args.model_type}, vocab {args.vocab_size:,}; {os.cpu_count()} cores)")
    print(f"{'run':<18}{'sentences':>11}{'sample MB':>11}{'sample s':>10}{'train s':>9}{'wall s':>8}{'cpu s':>8}"
          f"{'peak RSS MB':>13}")
    rows = [(f"train x{s}", train[s]) for s in scales] + [(f"train x{top} capped", capped)]
    for name, r in rows:
        print(f"{name:<18}{r['sentences']:>11,}{r['sample_mb']:>11.1f}{r['sample_s']:>10.1f}{r['train_s']:>9.1f}"
              f"{r['seconds']:>8.1f}{r['cpu_seconds']:>8.1f}{r['peak_rss_mb']:>13.0f}")
    print(f"\ntoken counting (bundle x{scales[0]}); spm: the encode alone, texts in memory")
    print(f"{'run':<14}{'docs':>9}{'text MB':>9}{'tokens':>13}{'wall s':>8}{'cpu s':>8}{'M tok/s':>9}"
          f"{'peak RSS MB':>13}")
    for scale in count_scales:
        b, j = bare[scale], job[scale]
        for name, wall, cpu, r in ((f"spm x{scale}", b["encode_s"], b["encode_cpu_s"], b),
                                   (f"tokenize x{scale}", j["seconds"], j["cpu_seconds"], j)):
            print(f"{name:<14}{r['documents']:>9,}{b['text_mb']:>9.1f}{r['tokens']:>13,}{wall:>8.1f}{cpu:>8.1f}"
                  f"{r['tokens'] / wall / 1e6:>9.2f}{r['peak_rss_mb']:>13.0f}")
    print()
    for scale in count_scales:
        b, j = bare[scale], job[scale]
        print(f"x{scale}: tokenize / spm throughput = {b['encode_s'] / j['seconds']:.2f} wall "
              f"({(b['encode_s'] + b['read_s']) / j['seconds']:.2f} counting spm's Parquet read of "
              f"{b['read_s']:.1f}s), {b['encode_cpu_s'] / j['cpu_seconds']:.2f} CPU; "
              f"same token count: {b['tokens'] == j['tokens']}")

if __name__ == "__main__":
    main()
