"""Peer benchmark: DataTrove doing our cleaning job's steps on the shared samples.

Runs in DataTrove's own virtualenv, never in the project's (see DATATROVE.md)::

    /tmp/dt-venv/bin/python tests/benchmarks/bench_datatrove.py --workers 1 --scale 1 --json dt.json

Stages, each one ``LocalPipelineExecutor`` run (DataTrove's dedup steps pass data between
executors through files, so a stage boundary is a disk round trip, as in real use):

1. ``filter``          JsonlReader -> FTFY -> PII -> Gopher repetition -> Gopher quality
                        -> C4 quality -> FineWeb quality -> JsonlWriter   (tasks = workers)
2. ``exact_sig``       ExactDedupSignature on the whole text          (tasks = workers)
3. ``exact_find``      ExactFindDedups                               (tasks = 1)
4. ``exact_filter``    ExactDedupFilter -> JsonlWriter               (tasks = workers)
5. ``minhash_sig``     MinhashDedupSignature, 5-grams, 14 x 8        (tasks = workers)
6. ``minhash_buckets`` MinhashDedupBuckets                           (tasks = 14, workers)
7. ``minhash_cluster`` MinhashDedupCluster                           (tasks = 1)
8. ``minhash_filter``  MinhashDedupFilter -> JsonlWriter (final)      (tasks = workers)

Left out, because DataTrove needs a download for them: the fastText language filter
(``LanguageFilter`` fetches its lid model) and ``C4BadWordsFilter`` (fetches word lists).
The word tokenizer for English is spaCy's blank ``en`` pipeline plus its rule-based
sentencizer, which ships inside the spacy wheel.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import resource
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature
from datatrove.pipeline.dedup.exact_dedup import (
    ExactDedupConfig,
    ExactDedupFilter,
    ExactDedupSignature,
    ExactFindDedups,
)
from datatrove.pipeline.dedup.minhash import MinhashConfig, MinhashDedupBuckets
from datatrove.pipeline.filters import (
    C4QualityFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
)
from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CORPORA = REPO.parent / "shared" / "corpora"
SAMPLES = ("finance", "medical")
MB = 1e6  # decimal MB, as in corpora/README.md


def doc_text(doc) -> str:
    return doc.text


# Whole-text hash, like our content_hash step. ExactDedupSignature reads the getter's
# return annotation (str vs bytes), so a typed function rather than a lambda.
EXACT_CONFIG = ExactDedupConfig(content_getter=doc_text)
MINHASH_CONFIG = MinhashConfig()  # 5-grams, 14 buckets x 8 hashes, seed 1: the defaults


# --------------------------------------------------------------------------- input


def materialise_input(corpora: Path, scale: int, dest: Path) -> tuple[int, int]:
    """Lay out the input files and return (docs, UTF-8 bytes of text).

    Copy 0 is a symlink to the original file so that scale 1 reads exactly the shared
    bytes; copies 1..N-1 get ``#k`` appended to every id, as distinct documents with
    identical text (so at scale N the dedup stages really see N-fold duplication).
    One file per copy keeps DataTrove's file-level sharding balanced across tasks.
    """
    dest.mkdir(parents=True)
    docs = text_bytes = 0
    for name in SAMPLES:
        src = corpora / name / "sample.jsonl.gz"
        (dest / f"{name}_000.jsonl.gz").symlink_to(src)
        n, b = count_jsonl_file(src)
        docs, text_bytes = docs + n, text_bytes + b
        # Streamed, not held in memory: this process's peak RSS is part of the result.
        for k in range(1, scale):
            with gzip.open(src, "rt", encoding="utf-8") as f, gzip.open(
                dest / f"{name}_{k:03d}.jsonl.gz", "wt", encoding="utf-8"
            ) as out:
                for line in f:
                    rec = json.loads(line)
                    rec["id"] = f"{rec['id']}#{k}"
                    out.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return docs * scale, text_bytes * scale


def count_jsonl_file(path: Path) -> tuple[int, int]:
    docs = text_bytes = 0
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            docs += 1
            text_bytes += len(json.loads(line)["text"].encode("utf-8"))
    return docs, text_bytes


def count_jsonl(folder: Path) -> tuple[int, int]:
    """(docs, text bytes) in a folder of JsonlWriter output; run between stages, untimed."""
    counts = [count_jsonl_file(p) for p in sorted(folder.glob("*.jsonl.gz"))]
    return sum(n for n, _ in counts), sum(b for _, b in counts)


def count_records(folder: Path, pattern: str, record_bytes: int) -> int:
    return sum(p.stat().st_size for p in folder.rglob(pattern)) // record_bytes


# --------------------------------------------------------------------------- running


@contextmanager
def stderr_to(path: Path, enabled: bool):
    """Send fd 2 (loguru + tqdm, from this process and its workers) to a file.

    DataTrove re-adds a stderr log sink in every task, so removing loguru handlers
    from here is not enough; redirecting the descriptor also covers spawned workers.
    """
    if not enabled:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with open(path, "ab") as log:
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def cpu_seconds() -> float:
    """User + system CPU of this process and its reaped children (pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


START_METHOD = "spawn"


def run_stage(name: str, pipeline: list, tasks: int, workers: int, logs: Path):
    executor = LocalPipelineExecutor(
        pipeline=pipeline,
        tasks=tasks,
        workers=min(workers, tasks),
        logging_dir=str(logs / name),
        # Default "spawn", not DataTrove's "forkserver": pool workers must be direct
        # children of this process for RUSAGE_CHILDREN (RSS and CPU) to see them.
        start_method=START_METHOD,
    )
    c0, t0 = cpu_seconds(), time.perf_counter()
    stats = executor.run()
    # CPU time is reported beside wall time because the 2-core CI-like machines are
    # often shared: wall time inflates under load, CPU time much less so.
    return time.perf_counter() - t0, cpu_seconds() - c0, stats


def step_breakdown(stats) -> list[dict]:
    """Per-step time (summed over tasks, so CPU-ish seconds) and doc counts."""
    rows = []
    for step in stats.stats:
        d = step.to_dict()
        s = d.get("stats") or {}

        def n(key):
            v = s.get(key, 0)
            return v.get("total", 0) if isinstance(v, dict) else v

        rows.append(
            {
                "step": step.name,
                "seconds_summed": round(step.time_stats.total, 3),
                "total": n("total") or n("documents"),
                "forwarded": n("forwarded"),
                "dropped": n("dropped"),
            }
        )
    return rows


def bench(args) -> dict:
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="dt-bench-"))
    if args.workdir and work.exists():
        shutil.rmtree(work)  # DataTrove skips tasks it finds completed in old logs
    work.mkdir(parents=True, exist_ok=True)
    inp, logs = work / "input", work / "logs"
    filtered, exact, final = work / "filtered", work / "exact", work / "output"
    exact_sigs, exact_dups = work / "exact_sigs", work / "exact_dups"
    mh_sigs, mh_buckets, mh_remove = work / "mh_sigs", work / "mh_buckets", work / "mh_remove"

    docs, text_bytes = materialise_input(Path(args.corpora), args.scale, inp)
    W = args.workers

    def reader(folder: Path):
        return JsonlReader(str(folder), glob_pattern="*.jsonl.gz")

    stages: dict[str, dict] = {}
    breakdown: dict[str, list] = {}
    dedup_in = filtered

    def record(name, timing, docs_in, bytes_in, docs_out, note=None):
        seconds, cpu, stats = timing
        stages[name] = {
            "docs_in": docs_in,
            "docs_out": docs_out,
            "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "docs_per_s": round(docs_in / seconds, 1) if seconds else None,
            "mb_in": round(bytes_in / MB, 3) if bytes_in is not None else None,
            "mb_per_s": round(bytes_in / MB / seconds, 3) if bytes_in is not None and seconds else None,
        }
        if note:
            stages[name]["note"] = note
        breakdown[name] = step_breakdown(stats)

    load_before = os.getloadavg()
    wall0 = time.perf_counter()
    with stderr_to(work / "datatrove-stderr.log", not args.verbose):
        t = run_stage(
            "filter",
            [
                reader(inp),
                FTFYFormatter(),
                PIIFormatter(),
                GopherRepetitionFilter(),
                GopherQualityFilter(),
                C4QualityFilter(),
                FineWebQualityFilter(),
                JsonlWriter(str(filtered)),
            ],
            W,
            W,
            logs,
        )
        t_filter = t[0]
        n_filtered = count_jsonl(filtered)
        record("filter", t, docs, text_bytes, n_filtered[0])

        if not args.no_exact_dedup:
            t = run_stage(
                "exact_sig", [reader(filtered), ExactDedupSignature(str(exact_sigs), EXACT_CONFIG)], W, W, logs
            )
            record("exact_sig", t, n_filtered[0], n_filtered[1], n_filtered[0])
            t = run_stage(
                "exact_find", [ExactFindDedups(str(exact_sigs), str(exact_dups), EXACT_CONFIG)], 1, 1, logs
            )
            n_dups = count_records(exact_dups, "*.c4_dup", 4)  # one uint32 doc index each
            record("exact_find", t, n_filtered[0], None, n_filtered[0] - n_dups, "out = docs not marked dup")
            t = run_stage(
                "exact_filter",
                [reader(filtered), ExactDedupFilter(str(exact_dups), EXACT_CONFIG), JsonlWriter(str(exact))],
                W,
                W,
                logs,
            )
            n_exact = count_jsonl(exact)
            record("exact_filter", t, n_filtered[0], n_filtered[1], n_exact[0])
            dedup_in = exact
        else:
            n_exact = n_filtered

        t = run_stage(
            "minhash_sig",
            [reader(dedup_in), MinhashDedupSignature(str(mh_sigs), config=MINHASH_CONFIG)],
            W,
            W,
            logs,
        )
        record("minhash_sig", t, n_exact[0], n_exact[1], n_exact[0])
        # Buckets must run as exactly num_buckets tasks (or a multiple).
        t = run_stage(
            "minhash_buckets",
            [MinhashDedupBuckets(str(mh_sigs), str(mh_buckets), config=MINHASH_CONFIG)],
            MINHASH_CONFIG.num_buckets,
            W,
            logs,
        )
        n_pairs = count_records(mh_buckets, "*.dups", 16)
        record("minhash_buckets", t, n_exact[0], None, n_pairs, "out = candidate dup pairs")
        t = run_stage(
            "minhash_cluster", [MinhashDedupCluster(str(mh_buckets), str(mh_remove), config=MINHASH_CONFIG)], 1, 1, logs
        )
        n_remove = count_records(mh_remove, "*.remove", 4)
        record("minhash_cluster", t, n_exact[0], None, n_exact[0] - n_remove, "out = docs not marked dup")
        t = run_stage(
            "minhash_filter",
            [reader(dedup_in), MinhashDedupFilter(str(mh_remove)), JsonlWriter(str(final))],
            W,
            W,
            logs,
        )
        n_final = count_jsonl(final)
        record("minhash_filter", t, n_exact[0], n_exact[1], n_final[0])
    # The sum of stage times, so the doc counting between stages is not charged to DataTrove.
    stage_seconds = sum(s["seconds"] for s in stages.values())
    stage_cpu = sum(s["cpu_seconds"] for s in stages.values())
    wall = time.perf_counter() - wall0

    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    child_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    result = {
        "tool": "datatrove",
        "datatrove_version": _dist_version("datatrove"),
        "spacy_version": _dist_version("spacy"),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "workers": W,
        "start_method": START_METHOD,
        "scale": args.scale,
        "docs": docs,
        "mb": round(text_bytes / MB, 3),
        "seconds": round(stage_seconds, 3),
        "docs_per_s": round(docs / stage_seconds, 1),
        "mb_per_s": round(text_bytes / MB / stage_seconds, 3),
        "cpu_seconds": round(stage_cpu, 3),
        "filter_seconds": round(t_filter, 3),
        "dedup_seconds": round(stage_seconds - t_filter, 3),
        "wall_seconds_incl_counting": round(wall, 3),
        # Load average before/after: above the core count means the timings were shared.
        "loadavg_1m_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
        "docs_kept": n_final[0],
        "mb_kept": round(n_final[1] / MB, 3),
        "per_stage": stages,
        "per_step": breakdown,
        # ru_maxrss is the max over one process, never a sum: with W workers the
        # job's real footprint is up to about W x peak_rss_children_mb.
        "peak_rss_mb": round(max(self_kb, child_kb) / 1024, 1),
        "peak_rss_self_mb": round(self_kb / 1024, 1),
        "peak_rss_children_mb": round(child_kb / 1024, 1),
        "exact_dedup": "none" if args.no_exact_dedup else "ExactDedup on whole doc text (xxhash64)",
        "left_out": ["LanguageFilter (fastText lid model download)", "C4BadWordsFilter (word-list download)"],
        "workdir": str(work),
    }
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
        result["workdir"] = None
    return result


def _dist_version(name: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def print_table(res: dict) -> None:
    head = f"{'stage':<16}{'docs in':>10}{'docs out':>10}{'seconds':>10}{'cpu s':>9}{'docs/s':>10}{'MB/s':>9}"
    print(head)
    print("-" * len(head))
    for name, s in res["per_stage"].items():
        mbps = f"{s['mb_per_s']:.3f}" if s["mb_per_s"] is not None else "-"
        print(
            f"{name:<16}{s['docs_in']:>10}{s['docs_out']:>10}{s['seconds']:>10.2f}{s['cpu_seconds']:>9.2f}"
            f"{s['docs_per_s']:>10.1f}{mbps:>9}"
        )
    print("-" * len(head))
    print(
        f"{'TOTAL':<16}{res['docs']:>10}{res['docs_kept']:>10}{res['seconds']:>10.2f}{res['cpu_seconds']:>9.2f}"
        f"{res['docs_per_s']:>10.1f}{res['mb_per_s']:>9.3f}"
    )
    print(
        f"\ninput {res['mb']} MB text, workers={res['workers']}, scale={res['scale']}, "
        f"peak RSS {res['peak_rss_mb']} MB (self {res['peak_rss_self_mb']}, "
        f"largest child {res['peak_rss_children_mb']}), datatrove {res['datatrove_version']}, "
        f"load avg before/after {res['loadavg_1m_before_after']} on {res['cpus']} CPUs"
    )
    if "filter" in res["per_step"]:
        print("\nfilter stage, per step (seconds summed over tasks):")
        for row in res["per_step"]["filter"]:
            print(
                f"  {row['step']:<36}{row['seconds_summed']:>9.2f}s  in {row['total']:>7}"
                f"  dropped {row['dropped']:>6}"
            )


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=1, help="LocalPipelineExecutor workers (= tasks)")
    ap.add_argument("--scale", type=int, default=1, help="repeat the input N times with distinct ids")
    ap.add_argument("--json", help="write the result JSON here")
    ap.add_argument("--corpora", default=str(DEFAULT_CORPORA), help="folder holding finance/ and medical/")
    ap.add_argument("--workdir", help="scratch folder (default: a fresh temp dir); wiped first")
    ap.add_argument("--keep", action="store_true", help="keep the scratch folder (outputs, DataTrove logs)")
    ap.add_argument("--no-exact-dedup", action="store_true", help="skip the 3 ExactDedup stages")
    ap.add_argument("--verbose", action="store_true", help="let DataTrove log to the terminal")
    ap.add_argument(
        "--start-method",
        default="spawn",
        choices=("spawn", "forkserver", "fork"),
        help="worker start method; with forkserver, child RSS/CPU are not counted",
    )
    args = ap.parse_args(argv)
    global START_METHOD
    START_METHOD = args.start_method

    res = bench(args)
    print_table(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
