"""Pipeline runs as MLflow holds them: list them, compare two, print their summary.

Reads the parent runs that ``dapt run`` logs (tag ``dapt_kind=pipeline``; keys in
:data:`pipelines.run_tracking.PARENT_KEYS`) through the tracking API, so the same
commands work on a local sqlite store and on a remote server.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from pipelines.run_tracking import PIPELINE_TAG, tracking_client


class RunsError(ValueError):
    """A run that cannot be found or read, as one line."""


@dataclass
class Difference:
    kind: str  # "param" or "metric"
    key: str
    a: str | float | None
    b: str | float | None


def _reading_client(uri: str):
    """A client for a store these commands only read: a sqlite file that is not there is
    an error naming it, not a new empty store (MLflow creates the file when it opens it,
    so a mistyped path would leave one behind)."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///"):]
        if not os.path.exists(path):
            raise RunsError(f"{path}: no such tracking store (a sqlite file `dapt run` creates)")
    return tracking_client(uri)


def find_run(client, ref: str):
    """A run by id, or a pipeline run by its name (the newest of that name)."""
    try:
        return client.get_run(ref)
    except Exception:  # not an id of this store: try it as a run name
        pass
    found = client.search_runs(
        [e.experiment_id for e in client.search_experiments()],
        filter_string=f"attributes.run_name = '{ref}'", order_by=["attributes.start_time DESC"], max_results=1,
    )
    if not found:
        raise RunsError(f"no run with id or name {ref!r} in {client.tracking_uri}")
    return found[0]


def compare_runs(uri: str, a: str, b: str) -> tuple[object, object, list[Difference], int]:
    """(run A, run B, the params and metrics that differ, how many keys are equal)."""
    client = _reading_client(uri)
    run_a, run_b = find_run(client, a), find_run(client, b)
    differences: list[Difference] = []
    equal = 0
    for kind, va, vb in (("param", run_a.data.params, run_b.data.params),
                         ("metric", run_a.data.metrics, run_b.data.metrics)):
        for key in sorted(set(va) | set(vb)):
            x, y = va.get(key), vb.get(key)
            if x == y or (kind == "metric" and x is not None and y is not None and math.isclose(x, y, rel_tol=1e-12)):
                equal += 1
            else:
                differences.append(Difference(kind, key, x, y))
    return run_a, run_b, differences, equal


def format_comparison(run_a, run_b, differences: list[Difference], equal: int) -> str:
    def shown(value) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:,.6g}"
        return str(value) if len(str(value)) <= 40 else str(value)[:37] + "..."

    head = [("", f"A {run_a.info.run_name}", f"B {run_b.info.run_name}")]
    head.append(("", run_a.info.run_id, run_b.info.run_id))
    rows = [(f"{d.kind} {d.key}", shown(d.a), shown(d.b)) for d in differences]
    widths = [max(len(r[i]) for r in head + rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in head + rows]
    lines.append(f"{len(differences)} keys differ, {equal} are equal")
    return "\n".join(lines)


def list_runs(uri: str, experiment: str, limit: int = 10, pipeline: str | None = None) -> tuple[list[tuple], str]:
    """The newest pipeline runs, newest first, as (pipeline, run id, params, metrics); and
    the experiment's id."""
    client = _reading_client(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise RunsError(f"no experiment {experiment!r} in {uri}")
    query = "tags.dapt_kind = 'pipeline'" + (f" and tags.{PIPELINE_TAG} = '{pipeline}'" if pipeline else "")
    runs = client.search_runs([found.experiment_id], filter_string=query,
                              order_by=["attributes.start_time DESC"], max_results=limit)
    rows = [(r.data.tags.get(PIPELINE_TAG, "?"), r.info.run_id, r.data.params, r.data.metrics) for r in runs]
    return rows, found.experiment_id


def format_summary(runs: list[tuple]) -> str:
    """One row per run and domain: documents in/kept, tokens, fertility, plan, best val loss."""
    header = ("pipeline", "run", "domain", "docs in", "kept", "kept %", "tokens", "tok/word", "plan", "best val loss")
    rows = []
    for name, run_id, params, metrics in runs:
        domains = sorted(k.split(".", 1)[1] for k in metrics if k.startswith("documents_in."))
        plan = "-"
        if "plan.params" in params:
            plan = (f"{_count(params['plan.params'])} params, {_count(params['plan.tokens'])} tokens, "
                    f"{float(params['plan.epochs']):.1f} ep")
        best = metrics.get("train.best_val_loss")
        for i, domain in enumerate(domains or ["-"]):
            fertility = metrics.get(f"tokenizer.fertility.{domain}")
            rows.append((
                name if i == 0 else "", run_id[:8] if i == 0 else "", domain,
                _int(metrics.get(f"documents_in.{domain}")), _int(metrics.get(f"kept.{domain}")),
                f"{100 * metrics[f'kept_ratio.{domain}']:.1f}" if f"kept_ratio.{domain}" in metrics else "-",
                _int(metrics.get(f"tokens.{domain}")), f"{fertility:.3f}" if fertility else "-",
                plan if i == 0 else "", f"{best:.4f}" if best is not None and i == 0 else ("-" if i == 0 else ""),
            ))
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    right = {3, 4, 5, 6, 7, 9}
    return "\n".join(
        "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
        for row in [header, *rows]
    )


def _int(value) -> str:
    return "-" if value is None else f"{int(value):,}"


def _count(value) -> str:
    n = float(value)
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:.0f}"


def ui_command(uri: str, experiment_id: str) -> str:
    """How to open the MLflow UI on these runs."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri.rstrip('/')}/#/experiments/{experiment_id}"
    return (f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000  "
            f"(then http://127.0.0.1:5000/#/experiments/{experiment_id})")
