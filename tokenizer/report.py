"""``dapt tokenizer report``: how well the domain tokenizer fits text, beside a
general-domain tokenizer of the same vocabulary size trained by the same code.

Per evaluation file and tokenizer (no BOS/EOS counted):

* ``tokens_per_word``: tokens / whitespace-separated words (fertility);
* ``bytes_per_token``: UTF-8 bytes / tokens;
* ``byte_fallback_rate``: share of tokens that are byte pieces (characters the
  vocabulary lacks);
* ``unk_rate``: share of ``<unk>`` tokens (0 with byte fallback);
* ``fewer_tokens``: ``1 - domain tokens / general tokens``, how many fewer tokens the
  domain tokenizer needs (BloombergGPT: 13-26 % fewer than general-purpose tokenizers on
  its data, Wu et al. 2023).

**The general tokenizer** is trained on ``../shared/corpora/general`` cleaned by the same
``dapt corpus clean`` job (``--domain general``, which gets the ``web`` profile as any
domain without a profile of its own), with the domain bundle's exact options: only the
text differs. Cleaning first, rather than reading the raw file, keeps the comparison about
the domain and not about markup, CRLF and BOMs that only one side saw. The web profile
keeps 70 of the 81 general documents (2.84 M characters: all speeches but one, 6 of the 16
books; the other books exceed Gopher's 100k words, contain ``{`` or are hard-wrapped
below FineWeb's line-punctuation ratio, and one is Spanish). ``--general`` takes either
that cleaned output (the general tokenizer is then trained on the fly) or a bundle
already trained from it.

Evaluation files: kept Parquet (a clean output folder, ``kept/`` or ``*.parquet``; the
``text`` column), or JSONL / JSONL.gz (``text`` field) and ``.txt`` read by the corpus
stage's reader. Evaluate on text neither tokenizer was trained on.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator

import numpy as np

from tokenizer.bundle import MANIFEST_FILE, Tokenizer, load_tokenizer

BATCH = 512


class ReportError(ValueError):
    """An evaluation input or tokenizer pairing the report cannot use."""


def eval_batches(path: str) -> Iterator[list[str]]:
    """Texts of one evaluation file, in batches."""
    if path.endswith((".jsonl", ".jsonl.gz", ".json", ".json.gz", ".txt")):
        yield from _reader_batches(path)
        return
    from tokenizer.kept import KeptError, iter_batches, kept_files

    try:
        groups = kept_files([path])
    except KeptError as err:
        raise ReportError(str(err)) from None
    for file in groups[0]:
        for batch in iter_batches(file, columns=("text",), batch_rows=BATCH):
            yield batch.column("text").to_pylist()


def _reader_batches(path: str) -> Iterator[list[str]]:
    from pipelines.config import CorpusConfig
    from pipelines.read import CorpusReader

    fmt = "txt" if path.endswith(".txt") else "jsonl.gz" if path.endswith(".gz") else "jsonl"
    corpus = CorpusConfig(name="eval", path=path, format=fmt, domain="eval", id_field=None)
    if not os.path.isfile(path):
        raise ReportError(f"{path}: no such file")
    batch: list[str] = []
    for kind, item in CorpusReader(corpus).read(path):
        if kind != "doc":
            raise ReportError(f"{path}: record {item['position']}: {item['error']}")
        batch.append(item["text"])
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


class _Counts:
    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        self.byte_mask = tokenizer.byte_piece_mask()
        self.pool = tokenizer.thread_pool()
        self.tokens = self.byte_tokens = self.unk_tokens = 0

    def add(self, texts: list[str]) -> None:
        ids = self.tokenizer.encode(texts, thread_pool=self.pool)
        flat = np.concatenate(ids) if ids else np.empty(0, dtype=np.int32)
        self.tokens += int(flat.size)
        self.byte_tokens += int(self.byte_mask[flat].sum())
        self.unk_tokens += int((flat == self.tokenizer.unk_id).sum())

    def result(self, words: int, n_bytes: int) -> dict:
        tokens = self.tokens or 1
        return {
            "tokens": self.tokens,
            "tokens_per_word": round(self.tokens / max(words, 1), 4),
            "bytes_per_token": round(n_bytes / tokens, 4),
            "byte_fallback_rate": round(self.byte_tokens / tokens, 6),
            "unk_rate": round(self.unk_tokens / tokens, 6),
        }


def measure_file(path: str, domain: Tokenizer, general: Tokenizer) -> dict:
    """Counts and metrics of both tokenizers on one file, read once."""
    counts = {"domain": _Counts(domain), "general": _Counts(general)}
    documents = words = n_bytes = 0
    for texts in eval_batches(path):
        documents += len(texts)
        words += sum(len(t.split()) for t in texts)
        n_bytes += sum(len(t.encode()) for t in texts)
        for c in counts.values():
            c.add(texts)
    if not documents:
        raise ReportError(f"{path}: no documents to evaluate")
    if not (counts["domain"].tokens and counts["general"].tokens):
        # Else 0 tokens against 0 would read as "100 % fewer tokens".
        raise ReportError(f"{path}: no text to evaluate: {documents} document(s), {n_bytes} bytes, no token")
    result = {"documents": documents, "words": words, "bytes": n_bytes}
    result.update({name: c.result(words, n_bytes) for name, c in counts.items()})
    result["fewer_tokens"] = round(1 - result["domain"]["tokens"] / max(result["general"]["tokens"], 1), 4)
    return result


def general_tokenizer(spec: str, domain: Tokenizer, workdir: str, progress=None) -> Tokenizer:
    """The general tokenizer: the bundle ``spec``, or one trained now on the kept data at
    ``spec`` with the domain bundle's options (same vocabulary size, same code)."""
    if os.path.isfile(os.path.join(spec, MANIFEST_FILE)):
        general = load_tokenizer(spec)
        if general.vocab_size != domain.vocab_size:
            raise ReportError(
                f"{spec}: vocabulary of {general.vocab_size} pieces, the domain bundle has {domain.vocab_size}; "
                "compare tokenizers of the same size"
            )
        return general
    from tokenizer.config import TokenizerConfig
    from tokenizer.train import TrainError, train_tokenizer

    options = {**domain.manifest["config"], "domain_weights": {}}
    bundle = os.path.join(workdir, "general")
    try:
        train_tokenizer([spec], bundle, TokenizerConfig.model_validate(options), progress)
    except TrainError as err:
        raise TrainError(f"general tokenizer from {spec}: {err}") from None
    return load_tokenizer(bundle)


def build_report(domain: Tokenizer, general: Tokenizer, eval_paths: list[str], general_source: str) -> dict:
    def about(t: Tokenizer, source: str) -> dict:
        return {
            "source": source, "sha256": t.sha256, "vocab_size": t.vocab_size, "model_type": t.manifest["model_type"],
        }

    return {
        "domain": about(domain, domain.path),
        "general": about(general, general_source),
        "files": {path: measure_file(path, domain, general) for path in eval_paths},
    }


def run_report(bundle: str, eval_paths: list[str], general: str, progress=None) -> dict:
    """The report of bundle ``bundle`` on ``eval_paths``; ``general`` as in :func:`general_tokenizer`."""
    domain = load_tokenizer(bundle)
    with tempfile.TemporaryDirectory(prefix="dapt-general-tokenizer-") as workdir:
        return build_report(domain, general_tokenizer(general, domain, workdir, progress), eval_paths, general)


def format_report(report: dict) -> str:
    lines = [
        f"domain  {report['domain']['source']}  ({report['domain']['vocab_size']:,} pieces, sha256 "
        f"{report['domain']['sha256'][:12]})",
        f"general {report['general']['source']}  ({report['general']['vocab_size']:,} pieces, sha256 "
        f"{report['general']['sha256'][:12]})",
        "",
        f"{'file':<40}{'docs':>8}  {'':<8}{'tok/word':>9}{'bytes/tok':>10}{'byte fb':>9}{'unk':>7}{'tokens':>12}",
    ]
    for path, r in report["files"].items():
        name = path if len(path) <= 38 else "..." + path[-35:]
        for i, side in enumerate(("domain", "general")):
            m = r[side]
            lines.append(
                f"{name if i == 0 else '':<40}{r['documents'] if i == 0 else '':>8}  {side:<8}"
                f"{m['tokens_per_word']:>9.3f}{m['bytes_per_token']:>10.2f}{m['byte_fallback_rate']:>9.2%}"
                f"{m['unk_rate']:>7.2%}{m['tokens']:>12,}"
            )
        verdict = "fewer" if r["fewer_tokens"] >= 0 else "MORE"
        lines.append(f"{'':<50}domain tokenizer: {abs(r['fewer_tokens']):.1%} {verdict} tokens than general")
    lines.append("(BloombergGPT reports 13-26% fewer tokens than general-purpose tokenizers on its data)")
    return "\n".join(lines)
