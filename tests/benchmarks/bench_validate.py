"""Benchmark of the validation gate against the cleaning job it gates (issue 3: < 10 %).

    .venv/bin/python tests/benchmarks/bench_validate.py [--repeats 3] [--workdir DIR]

Runs, each as the user would, in its own child process:

* ``clean``: ``dapt corpus clean --config examples/corpora.yaml`` (both samples);
* ``validate``: ``dapt validate`` of that output, with Data Docs and without.

Each round runs all three, one after the other, for ``--repeats`` rounds, and every
figure is the median over the rounds: on a shared 2-core machine one clean run moves by
a quarter from the next, so the denominator is a median too, measured side by side with
what it divides.

For each it reports wall time and CPU time (user + sys of the child and its worker
processes: on a shared 2-core machine the CPU figure is the steadier one), and the time
the stage measures itself (``stats.json`` ``seconds``; ``result.json`` ``seconds``,
which, like the clean job's, leaves out the interpreter's imports). Validation must pass
on the clean output of both samples, or the benchmark fails.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DAPT = str(Path(sys.executable).with_name("dapt"))


def timed(command: list[str]) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    run = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if run.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {run.returncode}:\n{run.stdout}\n{run.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "cpu": cpu}


def median(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workdir", help="keep the outputs here (default: a temporary folder)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        clean_dir = work / "clean"
        labels = {"validate (result.json + Data Docs)": [], "validate (result.json only)": ["--no-data-docs"]}
        cleans: list[dict] = []
        rows: dict[str, list[dict]] = {label: [] for label in labels}
        for _ in range(args.repeats):
            clean = timed([DAPT, "corpus", "clean", "--config", "examples/corpora.yaml", "--output", str(clean_dir),
                           "--quiet"])
            stats = json.loads((clean_dir / "stats.json").read_text())
            clean["in_stage"] = stats["seconds"]
            cleans.append(clean)
            for label, extra in labels.items():
                run = timed([DAPT, "validate", str(clean_dir), *extra])
                result = json.loads((clean_dir / "validation" / "result.json").read_text())
                if not result["success"]:
                    sys.exit(f"validation of the clean samples failed: {result['blocking_failures']} blocking")
                run["in_stage"] = result["seconds"]
                run["timings"] = result["timings"]
                rows[label].append(run)
    clean = {k: median(cleans, k) for k in ("wall", "cpu", "in_stage")}

    print(f"clean: {stats['kept']:,} kept of {stats['input']:,} documents; {result['checks']} checks, all passed\n")
    print("| stage | wall s | CPU s | in-stage s | wall vs clean | CPU vs clean | in-stage vs clean |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| `dapt corpus clean` (both samples), median of {len(cleans)} | {clean['wall']:.2f} | {clean['cpu']:.2f} | "
          f"{clean['in_stage']:.2f} | 100 % | 100 % | 100 % |")
    for label, runs in rows.items():
        wall, cpu, stage = (median(runs, k) for k in ("wall", "cpu", "in_stage"))
        print(f"| `dapt {label}`, median of {len(runs)} | {wall:.2f} | {cpu:.2f} | {stage:.2f} | "
              f"{100 * wall / clean['wall']:.1f} % | {100 * cpu / clean['cpu']:.1f} % | "
              f"{100 * stage / clean['in_stage']:.1f} % |")
    with_docs = next(iter(rows.values()))
    phases = {k: statistics.median(r["timings"][k] for r in with_docs) for k in with_docs[0]["timings"]}
    print("\nphases of the validation with Data Docs (median s): "
          + ", ".join(f"{k} {v:.2f}" for k, v in phases.items()))


if __name__ == "__main__":
    main()
