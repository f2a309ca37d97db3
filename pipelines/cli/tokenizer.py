"""``dapt tokenizer train|verify|export|report`` and ``dapt tokenize``: the tokenizer stage.

Thin over :mod:`tokenizer` (train, bundle, export, report) and :mod:`pipelines.tokenize`
(the Beam job); SentencePiece, pyarrow and Beam are imported when a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

TOKENIZER_EPILOG = """\
examples:
  dapt tokenizer train out/clean --vocab-size 32000 --output bundles/dapt-32k-v1
  dapt tokenizer verify bundles/dapt-32k-v1
  dapt tokenizer export bundles/dapt-32k-v1 --format hf --output hf/dapt-32k-v1
  dapt tokenizer report bundles/dapt-8k-v1 --eval heldout/kept --general out/general
"""

TRAIN_EPILOG = """\
examples:
  # the kept text of one clean run; a bundle folder is written once, never overwritten
  dapt tokenizer train out/clean --vocab-size 32000 --output bundles/dapt-32k-v1

  # several runs, BPE, a 500k-sentence sample with twice as much finance text as medical
  dapt tokenizer train out/finance out/medical --model-type bpe --input-sentence-size 500000 \\
      --weight finance=2 --weight medical=1 --vocab-size 16000 --output bundles/dapt-bpe-16k-v1

  # options from the tokenizer: section of a pipeline config; flags override its keys
  dapt tokenizer train out/clean --config pipeline.yaml --output bundles/dapt-v2

KEPT: a `dapt corpus clean` output DIR, its DIR/kept folder, or kept *.parquet files.
The sample is bounded by --input-sentence-size sentences (memory stays bounded), drawn
deterministically: the same KEPT and options give a byte-identical tokenizer.model. Domain
weights split the sample's bytes when the text exceeds the bound; below it all is used.
Every option is documented in tokenizer/config.py; all are recorded in BUNDLE/manifest.json.
"""

REPORT_EPILOG = """\
examples:
  # the general tokenizer is trained now, with the bundle's options, on cleaned general text
  # (the shared general sample supports at most ~21k pieces: compare at 8k, or bring more text)
  dapt corpus clean ../shared/corpora/general/sample.jsonl.gz --domain general --output out/general
  dapt tokenizer report bundles/dapt-8k-v1 --eval heldout/finance/kept --eval heldout/medical/kept \\
      --general out/general

  # or against a general bundle trained before (same vocabulary size)
  dapt tokenizer report bundles/dapt-32k-v1 --eval heldout.jsonl.gz --general bundles/general-32k --json

Metrics per file: tokens_per_word (fertility), bytes_per_token, byte_fallback_rate, unk_rate,
and fewer_tokens = 1 - domain tokens / general tokens (BloombergGPT: 13-26% fewer).
"""

TOKENIZE_EPILOG = """\
examples:
  dapt tokenize out/clean --tokenizer bundles/dapt-32k-v1 --output out/tokens
  dapt tokenize out/finance out/medical --tokenizer bundles/dapt-32k-v1 --output out/tokens \\
      --val-fraction 0.005
  dapt tokenize out/clean --tokenizer bundles/dapt-32k-v1 --output out/tokens -- \\
      --direct_running_mode=multi_processing --direct_num_workers=2

outputs (format in pipelines/tokenize.py): TOKDIR/{train,val}/shard-*.bin (flat uint16/uint32
token ids, EOS after each document) + shard-*.idx.npy (int64 document offsets),
TOKDIR/documents.parquet (one row per document), TOKDIR/manifest.json (written last).
Options can also come from the tokenize: section of --config; flags override its keys.
"""


def _fail(command: str, message, code: int = 2) -> int:
    print(f"dapt {command}: {message}", file=sys.stderr)
    return code


def _weights(values: list[str] | None) -> dict[str, float] | None:
    if not values:
        return None
    weights = {}
    for value in values:
        domain, sep, weight = value.partition("=")
        try:
            weights[domain] = float(weight)
        except ValueError:
            raise argparse.ArgumentTypeError(f"--weight {value!r}: expected DOMAIN=NUMBER") from None
        if not sep or not domain:
            raise argparse.ArgumentTypeError(f"--weight {value!r}: expected DOMAIN=NUMBER")
    return weights


def register(subparsers) -> None:
    tokenizer = subparsers.add_parser(
        "tokenizer", help="train, verify, export and compare the frozen SentencePiece tokenizer",
        description="The frozen domain tokenizer: a SentencePiece model plus a manifest, verified on every load.",
        epilog=TOKENIZER_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = tokenizer.add_subparsers(dest="tokenizer_command", metavar="COMMAND")
    tokenizer.set_defaults(func=lambda args: (tokenizer.print_help(), 2)[1])

    train = commands.add_parser(
        "train", help="train a SentencePiece bundle on a bounded sample of kept text",
        description="Sample kept text deterministically, train SentencePiece, freeze the bundle.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.add_argument("inputs", nargs="+", metavar="KEPT", help="clean output DIR, DIR/kept or *.parquet")
    train.add_argument("--output", required=True, metavar="BUNDLE", help="new bundle folder (must not exist)")
    train.add_argument("--config", metavar="PIPELINE.yaml", help="read its tokenizer: section")
    train.add_argument("--vocab-size", type=int, metavar="N", help="pieces in the vocabulary (default 32000)")
    train.add_argument("--model-type", choices=("unigram", "bpe"), help="default unigram")
    train.add_argument("--input-sentence-size", type=int, metavar="N", help="sentences in the sample, at most")
    train.add_argument("--weight", action="append", metavar="DOMAIN=W",
                       help="byte share of a domain in a bounded sample; 0 leaves it out (repeat)")
    train.add_argument("--quiet", action="store_true", help="no progress lines")
    train.set_defaults(func=run_train)

    verify = commands.add_parser(
        "verify", help="check a bundle's model against its manifest (exit 1 on a mismatch)",
        description="Recompute the model's sha256 and load it; exit 0 when the bundle is intact.",
        epilog="example:\n  dapt tokenizer verify bundles/dapt-32k-v1\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("bundle", metavar="BUNDLE")
    verify.set_defaults(func=run_verify)

    export = commands.add_parser(
        "export", help="write the bundle in Hugging Face tokenizers/transformers format",
        description="Export a bundle to tokenizer.json (+ tokenizer_config.json, special_tokens_map.json).",
        epilog="example:\n  dapt tokenizer export bundles/dapt-32k-v1 --format hf --output hf/dapt-32k-v1\n"
        "  python -c \"import tokenizers; tokenizers.Tokenizer.from_file('hf/dapt-32k-v1/tokenizer.json')\"\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("bundle", metavar="BUNDLE")
    export.add_argument("--format", choices=("hf",), default="hf", help="hf: Hugging Face tokenizers (default)")
    export.add_argument("--output", required=True, metavar="DIR", help="new or empty folder")
    export.set_defaults(func=run_export)

    report = commands.add_parser(
        "report", help="fertility, bytes/token, byte-fallback and unknown rates vs a general tokenizer",
        description="Compare the domain bundle with a general-domain tokenizer of the same size on evaluation text.",
        epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("bundle", metavar="BUNDLE")
    report.add_argument("--eval", required=True, action="append", nargs="+", metavar="FILE",
                        help="kept output/Parquet, JSONL(.gz) or .txt; repeat or list several")
    report.add_argument("--general", required=True, metavar="PATH",
                        help="cleaned general text (a clean output DIR: trained now) or a general bundle")
    report.add_argument("--json", action="store_true", help="print only JSON")
    report.set_defaults(func=run_report_command)

    tokenize = subparsers.add_parser(
        "tokenize", help="encode kept documents into token shards with exact counts (Beam job)",
        description="Encode every kept document with the frozen tokenizer, append EOS, count tokens, "
        "split train/validation by id hash and write memory-mappable shards.",
        epilog=TOKENIZE_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tokenize.add_argument("inputs", nargs="+", metavar="KEPT", help="clean output DIR, DIR/kept or *.parquet")
    tokenize.add_argument("--tokenizer", required=True, metavar="BUNDLE", help="the frozen tokenizer bundle")
    tokenize.add_argument("--output", required=True, metavar="TOKDIR", help="output folder (replaced)")
    tokenize.add_argument("--config", metavar="PIPELINE.yaml", help="read its tokenize: section")
    tokenize.add_argument("--val-fraction", type=float, metavar="F", help="validation share of documents (0.01)")
    tokenize.add_argument("--tokens-per-shard", type=int, metavar="N", help="tokens per shard (100M)")
    tokenize.add_argument("--quiet", action="store_true", help="no progress lines")
    tokenize.set_defaults(func=run_tokenize_command)


def run_train(args) -> int:
    from pipelines import progress
    from tokenizer.bundle import BundleError
    from tokenizer.config import TokenizerConfig, TokenizerConfigError, load_config
    from tokenizer.kept import KeptError
    from tokenizer.train import TrainError, train_tokenizer

    try:
        overrides = {
            "vocab_size": args.vocab_size, "model_type": args.model_type,
            "input_sentence_size": args.input_sentence_size, "domain_weights": _weights(args.weight),
        }
        config = load_config(TokenizerConfig, "tokenizer", args.config, overrides)
    except (TokenizerConfigError, argparse.ArgumentTypeError) as err:
        return _fail("tokenizer train", err)
    steps = ["documents", "sentences", "sample", "pieces"]
    reporter = progress.ProgressReporter("tokenizer", steps, stream=_terminal()) if not args.quiet else None
    try:
        if reporter:
            with reporter:
                manifest = train_tokenizer(args.inputs, args.output, config, progress=progress.count)
        else:
            manifest = train_tokenizer(args.inputs, args.output, config)
    except (BundleError, KeptError, TrainError) as err:
        return _fail("tokenizer train", err)
    sample = manifest["sample"]
    seconds = manifest["seconds"]
    print(f"bundle      {args.output}")
    print(f"vocab size  {manifest['vocab_size']:,} ({manifest['model_type']}), sha256 {manifest['sha256'][:16]}")
    print(f"sample      {sample['sentences']:,} sentences, {sample['bytes'] / 1e6:,.1f} MB from "
          f"{sample['documents']:,} documents (sha256 {sample['sha256'][:16]})")
    for domain, share in sample["by_domain"].items():
        print(f"  {domain:<10}{share['sentences']:>10,} sentences {share['bytes'] / 1e6:>8.1f} MB  "
              f"(weight {share['weight']:g})")
    print(f"time        {seconds['sample'] + seconds['train']:.1f}s (sample {seconds['sample']:.1f}s, "
          f"train {seconds['train']:.1f}s)")
    return 0


def _terminal():
    """A handle on the real stderr: training routes file descriptor 2 through a pipe to
    read SentencePiece's log, and the progress lines must not go into that pipe. (When
    ``sys.stderr`` is not a file, as under a test's capture, it is not descriptor 2.)"""
    import io
    import os

    try:
        return os.fdopen(os.dup(sys.stderr.fileno()), "w")
    except (io.UnsupportedOperation, AttributeError, ValueError):
        return sys.stderr


def run_verify(args) -> int:
    from tokenizer.bundle import BundleError, verify_bundle

    try:
        manifest = verify_bundle(args.bundle)
    except BundleError as err:
        return _fail("tokenizer verify", err, code=1)
    print(f"ok: {args.bundle}: sha256 {manifest['sha256']}, {manifest['vocab_size']:,} pieces, "
          f"{manifest['model_type']}, trained {manifest['created']}")
    return 0


def run_export(args) -> int:
    from tokenizer.bundle import BundleError, load_tokenizer
    from tokenizer.export import ExportError, export_hf

    try:
        written = export_hf(load_tokenizer(args.bundle), args.output)
    except (BundleError, ExportError) as err:
        return _fail("tokenizer export", err)
    for path in written:
        print(path)
    return 0


def run_report_command(args) -> int:
    from tokenizer.bundle import BundleError
    from tokenizer.config import TokenizerConfigError
    from tokenizer.kept import KeptError
    from tokenizer.report import ReportError, format_report, run_report
    from tokenizer.train import TrainError

    from pipelines import progress

    paths = [p for group in args.eval for p in group]
    steps = ["documents", "sentences", "sample", "pieces"]
    try:
        # Progress lines appear only while a general tokenizer is trained (stderr, so --json stays clean).
        with progress.ProgressReporter("general tokenizer", steps, stream=_terminal()):
            result = run_report(args.bundle, paths, args.general, progress=progress.count)
    except (BundleError, KeptError, ReportError, TokenizerConfigError, TrainError) as err:
        return _fail("tokenizer report", err)
    print(json.dumps(result, indent=2) if args.json else format_report(result))
    return 0


def run_tokenize_command(args) -> int:
    from pipelines.output import LocationError
    from pipelines.tokenize import TokenizeError, run_tokenize
    from tokenizer.bundle import BundleError
    from tokenizer.config import TokenizeConfig, TokenizerConfigError, load_config
    from tokenizer.kept import KeptError

    overrides = {"val_fraction": args.val_fraction, "tokens_per_shard": args.tokens_per_shard}
    try:
        config = load_config(TokenizeConfig, "tokenize", args.config, overrides)
        manifest = run_tokenize(args.inputs, args.tokenizer, args.output, config, beam_args=args.beam_args,
                                show_progress=not args.quiet)
    except (TokenizerConfigError, KeptError, BundleError) as err:
        return _fail("tokenize", err)
    except LocationError as err:
        return _fail("tokenize", f"--output {err}")
    except TokenizeError as err:
        return _fail("tokenize", f"{err}; nothing was committed to {args.output}", code=1)
    print(f"{'documents':<14}{manifest['unique_documents']:>14,}  (train {manifest['train_documents']:,}, "
          f"val {manifest['val_documents']:,})")
    print(f"{'train tokens':<14}{manifest['train_tokens']:>14,}")
    print(f"{'val tokens':<14}{manifest['val_tokens']:>14,}")
    for domain, group in manifest["by_domain"].items():
        per_document = group["tokens"] / max(group["documents"], 1)
        print(f"{'  ' + domain:<14}{group['tokens']:>14,}  {per_document:,.0f} per document")
    print(f"{'shards':<14}{len(manifest['shards']):>14}  ({manifest['dtype']}, tokenizer "
          f"{manifest['tokenizer_sha256'][:12]})")
    print(f"{'time':<14}{manifest['seconds']:>13.1f}s")
    out = args.output
    print(f"output: {out}/manifest.json  {out}/documents.parquet  {out}/train  {out}/val")
    return 0
