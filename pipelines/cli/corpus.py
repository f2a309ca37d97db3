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

REGISTRY_HELP = "registry file (default: $DAPT_REGISTRY, else ./dapt-registry.json)"

ADD_EPILOG = """\
examples:
  # register the finance sample; the format comes from the extension
  dapt corpus add finance-reuters --path ../shared/corpora/finance/sample.jsonl.gz \\
      --domain finance --id-field id --title-field title

  # a folder of Parquet files whose text is in `body`, into a team registry
  dapt corpus add contracts --path /data/contracts/ --format parquet --domain law \\
      --text-field body --registry /srv/dapt/registry.json

  # several globs, a larger sample, replacing the old entry
  dapt corpus add filings --path 'raw/10k/*.jsonl' --path 'raw/10q/*.jsonl' \\
      --domain finance --sample 1000 --replace

the sample check reads the first records with the cleaning job's reader and refuses when:
  files_match       a --path matches no file
  files_readable    a sampled file cannot be opened or decompressed
  text_field        the text field is missing or not a string in over 50% of records
  records_read      no document could be read
  quarantine_share  over 10% of the sampled records would be quarantined
  text_length       over 50% of texts empty, or the median text under 20 characters
  named_fields      --id-field/--title-field/--source-field missing in over 50% of records
  unique_ids        an --id-field value repeats within the sample

exit status: 0 registered, 1 refused (each reason on its own line) or registry error,
2 usage error."""

LIST_EPILOG = """\
examples:
  dapt corpus list
  dapt corpus list --json | jq '.[].config.name'
  DAPT_REGISTRY=/srv/dapt/registry.json dapt corpus list

columns: DOCS IN, KEPT and TOKENS are the figures of the last `dapt run` that read the
corpus (LAST RUN: its run id and date); `-` until a run has used it."""

SHOW_EPILOG = """\
examples:
  dapt corpus show finance-reuters
  dapt corpus show finance-reuters --json

exit status: 0 shown, 1 no such corpus (the registered names are listed)."""

REMOVE_EPILOG = """\
examples:
  dapt corpus remove finance-reuters

The entry goes; the corpus's files are not touched. Pipelines that name it
(`registered: finance-reuters`) fail to load until it is added again.
exit status: 0 removed, 1 no such corpus (the registered names are listed)."""

_FORMATS = {".jsonl.gz": "jsonl.gz", ".json.gz": "jsonl.gz", ".jsonl": "jsonl", ".json": "jsonl",
            ".parquet": "parquet", ".txt": "txt"}


def register(subparsers) -> None:
    corpus = subparsers.add_parser(
        "corpus", help="register raw corpora; clean them (Beam job)",
        description="Corpus stage: the corpus registry (add, list, show, remove) and the cleaning job.",
    )
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

    add = commands.add_parser(
        "add",
        help="check a sample of a corpus, then register it by name",
        description="Read a sample of the corpus with the cleaning job's reader and register the corpus "
        "if it passes; otherwise print why and register nothing.",
        epilog=ADD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add.add_argument("name", metavar="NAME", help="corpus name (letters, digits, . _ -)")
    add.add_argument("--path", action="append", required=True, metavar="PATH",
                     help="file, folder or glob (any Beam filesystem URI); repeatable")
    add.add_argument("--format", choices=sorted(set(_FORMATS.values())), help="default: from the file extension")
    add.add_argument("--domain", required=True, help="domain profile (finance, medical, law, ...)")
    add.add_argument("--text-field", help="record field with the text (default: text)")
    add.add_argument("--id-field", help="record field with a unique id (default: none; source file + position)")
    add.add_argument("--title-field", help="record field with the title")
    add.add_argument("--source-field", help="record field naming the upstream source (default: source)")
    add.add_argument("--encoding", help="text encoding (default: utf-8)")
    add.add_argument("--max-record-bytes", type=_positive_int, metavar="N",
                     help="a longer JSONL line or txt file is quarantined (default: 64 MiB)")
    add.add_argument("--sample", type=_positive_int, default=200, metavar="N", help="records to check (default: 200)")
    add.add_argument("--replace", action="store_true", help="replace an entry of the same name")
    add.add_argument("--registry", metavar="PATH", help=REGISTRY_HELP)
    add.set_defaults(func=run_add_command)

    listing = commands.add_parser(
        "list", help="registered corpora with the figures of their last run",
        description="List the registered corpora.", epilog=LIST_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    listing.add_argument("--json", action="store_true", help="print the entries as JSON")
    listing.add_argument("--registry", metavar="PATH", help=REGISTRY_HELP)
    listing.set_defaults(func=run_list_command)

    show = commands.add_parser(
        "show", help="one registered corpus: its fields, sample check and last run",
        description="Show everything the registry holds about one corpus.", epilog=SHOW_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    show.add_argument("name", metavar="NAME")
    show.add_argument("--json", action="store_true", help="print the entry as JSON")
    show.add_argument("--registry", metavar="PATH", help=REGISTRY_HELP)
    show.set_defaults(func=run_show_command)

    remove = commands.add_parser(
        "remove", help="unregister a corpus (its files stay)",
        description="Remove a corpus from the registry; its files are not touched.", epilog=REMOVE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    remove.add_argument("name", metavar="NAME")
    remove.add_argument("--registry", metavar="PATH", help=REGISTRY_HELP)
    remove.set_defaults(func=run_remove_command)


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number


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
    from pipelines.output import LocationError
    from pipelines.stats import AccountingError, summary_table

    try:
        config = corpus_from_args(args)
    except ConfigError as err:
        print(f"dapt corpus clean: {err}", file=sys.stderr)
        return 2
    try:
        stats = run_clean(config, args.output, beam_args=args.beam_args, show_progress=not args.quiet)
    except LocationError as err:
        print(f"dapt corpus clean: --output {err}", file=sys.stderr)
        return 2
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


_ADD_FIELDS = ("text_field", "id_field", "title_field", "source_field", "encoding", "max_record_bytes")


def run_add_command(args) -> int:
    from pydantic import ValidationError

    from pipelines.config import ConfigError, CorpusConfig, describe_errors
    from pipelines.registry import AlreadyRegistered, Registry, RegistryError, absolute_paths, check_sample

    say = "dapt corpus add"
    try:
        fields = {"name": args.name, "path": args.path, "format": args.format or _guess_format(args.path),
                  "domain": args.domain}
        # Only the flags given, so the check knows which fields the engineer named.
        fields.update({key: getattr(args, key) for key in _ADD_FIELDS if getattr(args, key) is not None})
        corpus = absolute_paths(CorpusConfig.model_validate(fields))
    except ConfigError as err:
        print(f"{say}: {err}", file=sys.stderr)
        return 2
    except ValidationError as err:
        for line in describe_errors(err).splitlines():
            print(f"{say}: {line}", file=sys.stderr)
        return 2
    registry = Registry(args.registry)
    try:
        if args.name in registry and not args.replace:
            print(f"{say}: corpus {args.name!r} is already registered in {registry.path}; "
                  "pass --replace to replace it", file=sys.stderr)
            return 1
        check = check_sample(corpus, limit=args.sample)
        for line in check.summary_lines():
            print(line)
        if not check.ok:
            for problem in check.problems:
                print(f"{say}: refused {args.name}: {problem.check}: {problem.message}", file=sys.stderr)
            return 1
        registry.add(corpus, check, replace=args.replace)
    except AlreadyRegistered as err:
        print(f"{say}: {err}; pass --replace to replace it", file=sys.stderr)
        return 1
    except RegistryError as err:
        print(f"{say}: {err}", file=sys.stderr)
        return 1
    print(f"registered {args.name} in {registry.path}")
    return 0


def run_list_command(args) -> int:
    import json

    from pipelines.registry import Registry, RegistryError

    registry = Registry(args.registry)
    try:
        entries = registry.list()
    except RegistryError as err:
        print(f"dapt corpus list: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps([e.model_dump(mode="json") for e in entries], indent=2, ensure_ascii=False))
    elif not entries:
        print(f"no corpus registered in {registry.path}")
    else:
        print(_table(entries))
    return 0


def _table(entries) -> str:
    header = ("NAME", "DOMAIN", "FORMAT", "DOCS IN", "KEPT", "TOKENS", "LAST RUN")
    rows = []
    for e in entries:
        u = e.usage
        if u:
            tokens = "-" if u.tokens is None else f"{u.tokens:,}"
            used = (f"{u.documents_in:,}", f"{u.kept:,}", tokens, f"{u.run_id} {u.finished:%Y-%m-%d}")
        else:
            used = ("-",) * 4
        rows.append((e.name, e.config.domain, e.config.format, *used))
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    numeric = {3, 4, 5}
    lines = []
    for row in (header, *rows):
        cells = [cell.rjust(w) if i in numeric else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def run_show_command(args) -> int:
    import json

    from pipelines.registry import Registry, RegistryError

    try:
        entry = Registry(args.registry).get(args.name)
    except RegistryError as err:
        print(f"dapt corpus show: {err}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(entry.model_dump(mode="json"), indent=2, ensure_ascii=False))
        return 0
    config = entry.config.model_dump()
    width = max(len(k) for k in config)
    for key, value in config.items():
        shown = ", ".join(value) if isinstance(value, list) else ("-" if value is None else value)
        print(f"{key:<{width}}  {shown}")
    check = entry.check
    print(f"{'added':<{width}}  {entry.added:%Y-%m-%d %H:%M:%S %Z}".rstrip())
    print(f"sample check ({check.checked:%Y-%m-%d %H:%M:%S %Z}): " + ("passed" if check.ok else check.refusal()))
    for line in check.summary_lines():
        print(f"  {line}")
    for path in check.files_sampled:
        print(f"  sampled file: {path}")
    usage = entry.usage
    if usage is None:
        print("last run: - (no run has used this corpus yet)")
    else:
        tokens = "-" if usage.tokens is None else f"{usage.tokens:,}"
        print(f"last run: {usage.run_id}, finished {usage.finished:%Y-%m-%d %H:%M:%S %Z}".rstrip())
        print(f"  documents in {usage.documents_in:,}, kept {usage.kept:,}, tokens {tokens}")
    return 0


def run_remove_command(args) -> int:
    from pipelines.registry import Registry, RegistryError

    registry = Registry(args.registry)
    try:
        registry.remove(args.name)
    except RegistryError as err:
        print(f"dapt corpus remove: {err}", file=sys.stderr)
        return 1
    print(f"removed {args.name} from {registry.path} (its files are untouched)")
    return 0
