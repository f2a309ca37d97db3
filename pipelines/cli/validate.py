"""``dapt validate``: the Great Expectations gate between cleaning and the tokenizer.

Thin over :func:`validation.gate.validate`; Great Expectations, pandas and Beam are
imported when the command runs, so ``dapt --help`` stays fast.
"""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = """\
Run the data contracts (Great Expectations suites built from config, with per-domain
defaults and per-corpus overrides) over a `dapt corpus clean` output, and with --tokens
over the tokenizer stage's token statistics. Names every failed check with its
unexpected count and example ids; writes DIR/validation/result.json and Data Docs that
render without network access."""

EPILOG = """\
examples:
  # the cleaned samples, with the built-in contracts
  dapt validate out/clean

  # the contracts of a pipeline config (its validate: and clean: sections)
  dapt validate out/clean --config examples/corpora.yaml

  # after tokenizing: tokens per document and per domain too
  dapt validate out/clean --tokens out/tokens

  # report elsewhere (a read-only DIR), no HTML, GE's progress bars and warnings shown
  dapt validate /mnt/clean --report-dir out/validation --no-data-docs --verbose

checks: column_types, id_unique, content_hash_unique, files_match_stats; per corpus:
text_not_null, text_not_empty, text_length, no_leftover_pii, no_leftover_markup,
language_allowed, language_und_share, drop_rates; with --tokens: split_values,
tokenized_ids_are_kept, every_kept_document_tokenized, manifest_tokens_match,
manifest_documents_match, and per domain tokens_per_document, tokens_per_domain.
Severity per check (validate.severity, per domain, per corpus): blocking, warning, off;
text_length is a warning by default, everything else blocking.

exit status: 0 every blocking check holds (warnings are printed), 1 a blocking check
failed or the output is unreadable, 2 usage or config error.
outputs: DIR/validation/result.json, DIR/validation/data-docs/index.html"""


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate",
        help="gate a cleaned corpus (and its token statistics) with Great Expectations",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("directory", metavar="DIR", help="output of `dapt corpus clean`")
    parser.add_argument("--config", metavar="PIPELINE.yaml", help="pipeline config: its validate: and clean: sections")
    parser.add_argument("--tokens", metavar="TOKDIR", help="output of `dapt tokenize` for DIR")
    parser.add_argument(
        "--report-dir", metavar="PATH", help="where result.json and data-docs/ go (default DIR/validation)"
    )
    parser.add_argument("--no-data-docs", action="store_true", help="write result.json only")
    parser.add_argument(
        "--verbose", action="store_true", help="show Great Expectations' progress bars, warnings and logs"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pipelines.config import ConfigError
    from validation.config import ValidateConfig, read_pipeline_config
    from validation.datadocs import DataDocsError
    from validation.gate import validate
    from validation.tables import OutputError

    try:
        config, clean = read_pipeline_config(args.config) if args.config else (ValidateConfig(), None)
        if args.no_data_docs:
            config = config.model_copy(update={"data_docs": False})
        report = validate(
            args.directory, config, clean, tokens=args.tokens, report_dir=args.report_dir, verbose=args.verbose
        )
    except ConfigError as err:
        print(f"dapt validate: {err}", file=sys.stderr)
        return 2
    except OutputError as err:
        print(f"dapt validate: {err}", file=sys.stderr)
        return err.exit_code
    except DataDocsError as err:
        print(f"dapt validate: {err}", file=sys.stderr)
        return 1
    except OSError as err:  # the report folder cannot be written
        print(f"dapt validate: {err}", file=sys.stderr)
        return 2
    print(summary(report))
    return 0 if report.success else 1


def summary(report) -> str:
    """The terminal report: one line per failed check, then the verdict and the files."""
    lines = [f"FAIL {r.describe()}" for r in report.blocking_failures]
    lines += [f"WARN {r.describe()}" for r in report.warnings]
    suites = len({r.suite for r in report.results})
    verdict = "PASSED" if report.success else "FAILED"
    lines.append(
        f"{verdict}: {len(report.results)} checks in {suites} suites, {len(report.blocking_failures)} blocking "
        f"failed, {len(report.warnings)} warnings ({report.seconds:.1f} s)"
    )
    lines.append(f"result: {report.report_dir}/result.json")
    if report.data_docs:
        lines.append(f"data docs: {report.data_docs}")
    return "\n".join(lines)
