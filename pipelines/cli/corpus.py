"""``dapt corpus ...``: the corpus stage."""

from __future__ import annotations

import argparse
import sys


CLEAN_EPILOG = """\
examples:
  # one-off: two files of one domain
  dapt corpus clean ../shared/corpora/finance/sample.jsonl.gz --domain finance --output out/finance

  # many corpora, each with its own format, fields and domain
  dapt corpus clean --config examples/corpora.yaml --output out/clean

  # any Beam pipeline option passes through after --
  dapt corpus clean --config corpora.yaml --output gs://bucket/clean -- \\
      --runner=DataflowRunner --project=my-project --region=us-central1
  dapt corpus clean --config corpora.yaml --output out -- \\
      --direct_running_mode=multi_processing --direct_num_workers=2

outputs: DIR/kept/*.parquet, DIR/rejected/*.parquet (+reason), DIR/quarantine/*.parquet,
DIR/stats.json (written last; input == kept + rejected + quarantined is checked)
"""

_FORMATS = {".jsonl.gz": "jsonl.gz", ".json.gz": "jsonl.gz", ".jsonl": "jsonl", ".json": "jsonl",
            ".parquet": "parquet", ".txt": "txt"}


def register(subparsers) -> None:
    corpus = subparsers.add_parser("corpus", help="clean raw corpora (Beam job)", description="Corpus stage.")
    commands = corpus.add_subparsers(dest="corpus_command", metavar="COMMAND")
    corpus.set_defaults(func=lambda args: (corpus.print_help(), 2)[1])

    clean = commands.add_parser(
        "clean",
        help="repair, strip markup and boilerplate, filter, redact PII, dedup, count",
        description="Run the cleaning Beam job over one or many corpora.",
        epilog=CLEAN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    clean.add_argument("inputs", nargs="*", metavar="INPUT", help="files, folders or globs (any Beam filesystem)")
    clean.add_argument("--config", help="pipeline YAML with a `corpora` list (and optional `clean` section)")
    clean.add_argument("--output", required=True, metavar="DIR", help="output directory")
    clean.add_argument("--domain", help="domain of the INPUTs (finance, medical, ...)")
    clean.add_argument("--name", help="corpus name for the INPUTs (default: the domain)")
    clean.add_argument("--format", choices=sorted(set(_FORMATS.values())), help="default: from the file extension")
    clean.add_argument("--text-field", default="text")
    clean.add_argument("--id-field", default="id", help="record field with the id (else source file + position)")
    clean.add_argument("--quiet", action="store_true", help="no progress lines")
    clean.set_defaults(func=run_clean_command)


def corpus_from_args(args):
    """The :class:`~pipelines.config.PipelineConfig` that INPUT flags or --config describe."""
    # Imported here so that `dapt --help` and other commands skip pydantic's start-up.
    from pipelines.config import ConfigError, load_config, parse_config

    if args.config:
        if args.inputs:
            raise ConfigError("give either INPUT paths or --config, not both")
        return load_config(args.config)
    if not args.inputs:
        raise ConfigError("nothing to clean: give INPUT paths (with --domain) or --config FILE")
    if not args.domain:
        raise ConfigError("--domain is required with INPUT paths")
    fmt = args.format or _guess_format(args.inputs)
    corpus = {
        "name": args.name or args.domain, "path": list(args.inputs), "format": fmt, "domain": args.domain,
        "text_field": args.text_field, "id_field": args.id_field, "title_field": "title",
    }
    return parse_config({"corpora": [corpus]}, source="arguments")


def _guess_format(paths: list[str]) -> str:
    from pipelines.config import ConfigError

    for suffix, fmt in _FORMATS.items():
        if all(p.endswith(suffix) for p in paths):
            return fmt
    raise ConfigError(f"cannot tell the format of {paths[0]!r} from its name: pass --format")


def run_clean_command(args) -> int:
    from pipelines.clean import run_clean
    from pipelines.config import ConfigError
    from pipelines.stats import AccountingError, summary_table

    try:
        config = corpus_from_args(args)
    except ConfigError as err:
        print(f"dapt corpus clean: {err}", file=sys.stderr)
        return 2
    try:
        stats = run_clean(config, args.output, beam_args=args.beam_args, show_progress=not args.quiet)
    except AccountingError as err:
        print(f"dapt corpus clean: {err}; nothing was committed to {args.output}", file=sys.stderr)
        return 1
    print(summary_table(stats))
    for path, error in stats["unreadable_files"].items():
        print(f"error: {path}: {error} (quarantined)", file=sys.stderr)
    for path in stats["empty_files"]:
        print(f"warning: {path}: empty file, no records", file=sys.stderr)
    print(f"output: {args.output}/kept  {args.output}/rejected  {args.output}/quarantine  {args.output}/stats.json")
    return 0


