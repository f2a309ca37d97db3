"""``dapt runs list|compare``: pipeline runs as MLflow holds them. Thin over :mod:`pipelines.runs`."""

from __future__ import annotations

import argparse
import json
import sys

EPILOG = """\
examples:
  dapt runs list                                   # newest pipeline runs, one row per domain
  dapt runs list --pipeline finance --limit 3
  dapt runs compare 3f2a9c1e... 7b41d0aa...        # run ids, or pipeline run names
  dapt runs compare finance-20261126-101500 finance-20261127-101500 --json

Tracking store: --tracking-uri, else MLFLOW_TRACKING_URI, else sqlite:///mlflow.db."""


def register(subparsers) -> None:
    runs = subparsers.add_parser("runs", help="list and compare pipeline runs (MLflow)",
                                 description="Pipeline runs logged by `dapt run`.", epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = runs.add_subparsers(dest="runs_command", metavar="COMMAND")
    runs.set_defaults(func=lambda args: (runs.print_help(), 2)[1])

    listing = commands.add_parser("list", help="the newest pipeline runs as a table")
    listing.add_argument("--experiment", default="dapt")
    listing.add_argument("--pipeline", help="only runs of this pipeline")
    listing.add_argument("--limit", type=int, default=10)
    listing.add_argument("--tracking-uri", metavar="URI")
    listing.set_defaults(func=run_list)

    compare = commands.add_parser("compare", help="the params and metrics in which two runs differ")
    compare.add_argument("run_a", metavar="RUN_A", help="run id or run name")
    compare.add_argument("run_b", metavar="RUN_B")
    compare.add_argument("--tracking-uri", metavar="URI")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(func=run_compare)


def _uri(args) -> str:
    from pretrain.tracking import default_tracking_uri

    return default_tracking_uri(args.tracking_uri)


def run_list(args) -> int:
    from pipelines.runs import RunsError, format_summary, list_runs, ui_command

    uri = _uri(args)
    try:
        runs, experiment_id = list_runs(uri, args.experiment, args.limit, args.pipeline)
    except RunsError as err:
        print(f"dapt runs list: {err}", file=sys.stderr)
        return 1
    print(format_summary(runs) if runs else "no pipeline runs yet")
    print(f"MLflow UI: {ui_command(uri, experiment_id)}")
    return 0


def run_compare(args) -> int:
    from pipelines.runs import RunsError, compare_runs, format_comparison

    try:
        run_a, run_b, differences, equal = compare_runs(_uri(args), args.run_a, args.run_b)
    except RunsError as err:
        print(f"dapt runs compare: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"a": run_a.info.run_id, "b": run_b.info.run_id, "equal": equal,
                          "differ": [d.__dict__ for d in differences]}, indent=2))
    else:
        print(format_comparison(run_a, run_b, differences, equal))
    return 0
