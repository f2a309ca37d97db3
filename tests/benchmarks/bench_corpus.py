"""Benchmark of the cleaning job: Beam vs a bare Python loop vs DataTrove.

    .venv/bin/python tests/benchmarks/bench_corpus.py [--scales 1 4] [--repeat 3] [--datatrove-json FILE]

Each measurement runs in its own child process (so peak RSS, read from ``VmHWM``, is that
run's alone):

* ``loop``: one process, a plain ``for`` loop calling the very same step objects and
  dedup functions as the Beam job (read, the repeated-id check, repair, markup,
  boilerplate, filters, language, PII, counts, exact + near dedup, Parquet writes of
  kept, rejected and the dedup index). This is the ceiling for the Beam job: everything
  the job adds on top is orchestration overhead.
* ``beam``: ``pipelines.clean.run_clean`` on the embedded in-process runner.

With ``--repeat N`` each mode runs N times per scale, loop and Beam alternating, and the
run with the median CPU time is reported.

Input: the finance + medical samples, repeated ``scale`` times with distinct ids (the
copies are exact duplicates, so at 4x the dedup stages see 4x the documents). Wall time
and CPU time (user + sys of the child) are both reported: on a shared 2-core machine the
CPU time is the steadier figure. The DataTrove figure comes from
``tests/benchmarks/bench_datatrove.py`` run in its own venv (see DATATROVE.md).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

from measure import cpu_seconds, peak_rss_mb

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("DAPT_SHARED", REPO.parent / "shared"))
SAMPLES = {"finance": SHARED / "corpora/finance/sample.jsonl.gz", "medical": SHARED / "corpora/medical/sample.jsonl.gz"}


def make_input(root: Path, scale: int) -> dict:
    """The samples repeated ``scale`` times; returns the corpora config and text size."""
    corpora, text_bytes = [], 0
    for domain, path in SAMPLES.items():
        out = root / f"{domain}-x{scale}.jsonl.gz"
        with gzip.open(path, "rt", encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        lines = []
        for copy in range(scale):
            for r in records:
                lines.append(json.dumps({**r, "id": f"{r['id']}#{copy}"} if copy else r, ensure_ascii=False))
                text_bytes += len(r["text"].encode())
        out.write_bytes(gzip.compress("\n".join(lines).encode(), compresslevel=1))
        corpora.append({"name": domain, "path": str(out), "format": "jsonl.gz", "domain": domain,
                        "id_field": "id", "title_field": "title"})
    return {"corpora": corpora, "text_bytes": text_bytes}


def run_loop(config, out_dir: str) -> dict:
    """The bare loop: same steps, no Beam. Returns counts and per-step seconds."""
    from pipelines import output
    from pipelines.clean import domain_steps, repeated_ids
    from pipelines.dedup import index_table, keep_key, near_duplicate_rejections
    from pipelines.read import CorpusReader, list_files
    from pipelines.steps.boilerplate import RemoveBoilerplate, distinct_lines, frequent_lines
    from pipelines.steps.counts import CountDocument
    from pipelines.steps.markup import StripMarkup
    from pipelines.steps.minhash import MinHasher, content_hash
    from pipelines.steps.repair import Repair

    seconds: Counter[str] = Counter()

    def timed(name, fn, *args):
        start = time.perf_counter()
        result = fn(*args)
        seconds[name] += time.perf_counter() - start
        return result

    docs, quarantined = [], 0
    for corpus in config.corpora:
        for path in list_files(corpus)[0]:
            for kind, item in timed("read", lambda: list(CorpusReader(corpus).read(path))):
                if kind == "doc":
                    docs.append(item)
                else:
                    quarantined += 1
    n_input = len(docs) + quarantined
    start = time.perf_counter()
    repeats = repeated_ids((d["id"], d["_origin"]) for d in docs)
    unique = [d for d in docs if repeats.get(d["id"], d["_origin"]) == d["_origin"]]
    quarantined += len(docs) - len(unique)
    docs = unique
    seconds["ids"] += time.perf_counter() - start
    repair, markup = Repair(), StripMarkup()
    docs = [timed("repair", repair, d) for d in docs]
    docs = [timed("markup", markup, d) for d in docs]

    profiles = {c.domain: config.clean.profile(c.domain) for c in config.corpora}
    start = time.perf_counter()
    line_docs: Counter = Counter()
    per_source = Counter((d["domain"], d["source"]) for d in docs)
    for d in docs:
        line_docs.update(distinct_lines(d, profiles[d["domain"]].boilerplate.min_line_chars))
    thresholds = {dom: (p.boilerplate.min_fraction, p.boilerplate.min_docs) for dom, p in profiles.items()}
    frequent = frequent_lines(line_docs.items(), per_source, thresholds)
    remover = RemoveBoilerplate()
    docs = [remover(d, frequent) for d in docs]
    seconds["boilerplate"] += time.perf_counter() - start

    steps = {dom: domain_steps(config.clean, dom) for dom in profiles}
    counter = CountDocument()
    kept, rejected = [], []
    for d in docs:
        s = steps[d["domain"]]
        verdict = None
        for f in s.filters:
            verdict = timed("filters", f.check, d)
            if verdict:
                break
        if not verdict:
            verdict = timed("language", s.language.check, d)
        if verdict:
            d["reason"], d["reason_detail"] = verdict
            rejected.append(d)
            continue
        d = timed("pii", s.pii, d)
        kept.append(timed("counts", counter, d))

    start = time.perf_counter()
    groups = defaultdict(list)
    for d in kept:
        d["content_hash"] = content_hash(d["text"])
        groups[d["content_hash"]].append(d)
    kept = []
    for group in groups.values():
        group.sort(key=keep_key)
        kept.append(group[0])
        rejected += [{**d, "reason": "duplicate_exact"} for d in group[1:]]
    seconds["exact_dedup"] += time.perf_counter() - start

    start = time.perf_counter()
    dedup = config.clean.dedup
    hasher = MinHasher(dedup.shingle_size, dedup.num_perm, dedup.bands, dedup.rows, dedup.seed)
    decisions = near_duplicate_rejections(kept, hasher)
    survivors = []
    for d in kept:
        if d["id"] in decisions:
            rejected.append({**d, "reason": "duplicate_near", "reason_detail": decisions[d["id"]]})
        else:
            survivors.append(d)
    kept = survivors
    seconds["near_dedup"] += time.perf_counter() - start

    start = time.perf_counter()
    for kind, items in (("kept", kept), ("rejected", rejected)):
        rows = [output.doc_row(d, kind) for d in items]
        shards = output.num_shards(len(rows), config.clean.docs_per_shard)
        by_shard = defaultdict(list)
        for row in rows:
            by_shard[output.shard_of(output.row_key(kind, row), shards)].append(row)
        for index, shard_rows in by_shard.items():
            output.write_shard(out_dir, kind, index, shards, shard_rows, config.clean.compression)
    output.write_index(out_dir, index_table(kept, hasher), config.clean.compression)
    seconds["write"] += time.perf_counter() - start
    return {"input": n_input, "kept": len(kept), "rejected": len(rejected), "quarantined": quarantined,
            "step_seconds": {k: round(v, 2) for k, v in seconds.items()}}


def child(mode: str, input_json: str, out_dir: str) -> None:
    from pipelines.config import parse_config

    spec = json.loads(Path(input_json).read_text())
    config = parse_config({"corpora": spec["corpora"]})
    start = time.perf_counter()
    if mode == "loop":
        result = run_loop(config, out_dir)
    else:
        from pipelines.clean import run_clean

        stats = run_clean(config, out_dir, show_progress=False)
        result = {"input": stats["input"], "kept": stats["kept"], "rejected": sum(stats["rejected"].values()),
                  "quarantined": stats["quarantined"]}
    result["seconds"] = time.perf_counter() - start
    result["cpu_seconds"] = cpu_seconds()
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def measure(mode: str, input_json: Path, root: Path) -> dict:
    out_dir = root / f"out-{mode}"
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(input_json), str(out_dir)],
        capture_output=True, text=True, check=True, cwd=REPO,
    )
    shutil.rmtree(out_dir)
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_run(runs: list[dict]) -> dict:
    """The run with the median CPU time (the steadier figure on a shared machine)."""
    return sorted(runs, key=lambda r: r["cpu_seconds"])[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each mode per scale, loop and Beam alternating; the median is reported")
    parser.add_argument("--datatrove-json", type=Path, default=Path(__file__).with_name("datatrove-result.json"))
    parser.add_argument("--child", nargs=3, metavar=("MODE", "INPUT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for scale in args.scales:
            root = Path(tmp) / f"x{scale}"
            root.mkdir()
            spec = make_input(root, scale)
            (root / "input.json").write_text(json.dumps(spec))
            runs: dict[str, list[dict]] = {"loop": [], "beam": []}
            for _ in range(args.repeat):
                for mode, done in runs.items():
                    done.append(measure(mode, root / "input.json", root))
                    print(f"  done: {mode} x{scale} in {done[-1]['seconds']:.1f}s, {done[-1]['cpu_seconds']:.1f} CPU s",
                          file=sys.stderr, flush=True)
            for mode, done in runs.items():
                rows.append({**median_run(done), "mode": mode, "scale": scale, "mb": spec["text_bytes"] / 1e6})

    print(f"\n{'run':<10}{'docs':>9}{'text MB':>9}{'wall s':>9}{'cpu s':>9}{'docs/s':>9}{'MB/s':>7}"
          f"{'docs/cpu-s':>12}{'peak RSS MB':>13}")
    for r in rows:
        print(f"{r['mode'] + ' x' + str(r['scale']):<10}{r['input']:>9,}{r['mb']:>9.1f}{r['seconds']:>9.1f}"
              f"{r['cpu_seconds']:>9.1f}{r['input'] / r['seconds']:>9.0f}{r['mb'] / r['seconds']:>7.2f}"
              f"{r['input'] / r['cpu_seconds']:>12.0f}{r['peak_rss_mb']:>13.0f}")
    by = {(r["mode"], r["scale"]): r for r in rows}
    print()
    for scale in args.scales:
        loop, beam = by[("loop", scale)], by[("beam", scale)]
        print(f"x{scale}: beam / loop throughput = {loop['seconds'] / beam['seconds']:.2f} (wall), "
              f"{loop['cpu_seconds'] / beam['cpu_seconds']:.2f} (cpu); same counts: "
              f"{(loop['kept'], loop['rejected']) == (beam['kept'], beam['rejected'])}")
    if len(args.scales) > 1:
        lo, hi = min(args.scales), max(args.scales)
        for mode in ("loop", "beam"):
            growth = by[(mode, hi)]["peak_rss_mb"] / by[(mode, lo)]["peak_rss_mb"]
            print(f"{mode}: peak RSS x{hi} / x{lo} = {growth:.2f} for {hi // lo}x the input")
    loop_steps = by[("loop", min(args.scales))].get("step_seconds", {})
    print("\nper-step seconds (loop, x{}): ".format(min(args.scales))
          + ", ".join(f"{k} {v}" for k, v in sorted(loop_steps.items(), key=lambda kv: -kv[1])))
    if args.datatrove_json.exists():
        dt = json.loads(args.datatrove_json.read_text())
        beam = by[("beam", 1)] if ("beam", 1) in by else None
        if beam:
            print(f"\nDataTrove {dt.get('datatrove_version', '?')} ({dt['workers']} worker): {dt['docs_per_s']:.0f} docs/s, "
                  f"{dt['mb_per_s']:.3f} MB/s; dapt Beam x1 / DataTrove = {beam['input'] / beam['seconds'] / dt['docs_per_s']:.1f}x")


if __name__ == "__main__":
    main()
