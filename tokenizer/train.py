"""``dapt tokenizer train``: a SentencePiece model from a bounded, deterministic sample of
kept text, frozen as a bundle (:mod:`tokenizer.bundle`).

**Sentences.** SentencePiece learns from sentences, one per input line. A sentence here is
one non-blank line of a kept document, as the document will be encoded later; a line
longer than ``max_sentence_length`` bytes (FOMC minutes are one long line) is split at
whitespace, since SentencePiece would otherwise skip it. Feeding whole multi-line chunks
instead was measured to be slower to train and slightly worse (1.873 vs 1.839 tokens per
word on held-back finance + medical text, unigram 4k, 8 MB sample), so lines it is. The
newline itself is a user-defined symbol: one token, and byte fallback then only counts
characters the vocabulary lacks.

**Sample.** SentencePiece holds its whole input in memory, so the corpus is streamed in
record batches and only a bounded sample is kept: every sentence gets the 64-bit hash key
``xxh64(seed, document id, sentence index)`` and each domain keeps the sentences with the
smallest keys (a bottom-k sample: uniform, and the same whatever the order of files and
rows). ``domain_weights`` are shares of the sample's *bytes* (finance lines are wire-story
lines of ~80 bytes, medical ones paragraphs of ~500: equal shares of sentences would give
medicine 6x the text), within ``input_sentence_size`` sentences in all; a domain with
less text than its share gives all it has and the rest goes to the others by weight
(:func:`allocate`). Weights only bind when there is more text than the bound: below it,
every sentence is used (a weight of 0 still leaves a domain out). Memory is at most
``domains x input_sentence_size`` sentences of at most ``max_sentence_length`` bytes,
however large the corpus (measured: 4x the input at a 1x-sized bound, 910 MB peak against
800 MB at 1x and 2.5 GB unbounded; ``tests/benchmarks/bench_tokenizer.py``). The sample is fed to SentencePiece
in key order through ``sentence_iterator`` (so no input path ends up in the model's
trainer options) and is below ``input_sentence_size``, so SentencePiece never resamples.

**Determinism.** The same kept files and options give a byte-identical ``tokenizer.model``
(the test trains twice); ``num_threads`` is part of the options because the unigram EM
result depends on it.
"""

from __future__ import annotations

import bisect
import contextlib
import hashlib
import heapq
import io
import itertools
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import xxhash

from tokenizer.config import TokenizerConfig
from tokenizer.kept import KeptError, check_schema, describe_inputs, iter_batches, kept_files

NEWLINE = "\n"

Progress = Callable[[str, int], None]


class TrainError(ValueError):
    """SentencePiece refused the sample or the options (e.g. a vocabulary larger than the
    sample supports); the message is SentencePiece's, on one line."""


def placeholder_symbols() -> list[str]:
    """The corpus stage's redaction placeholders, ``<EMAIL>``, ``<PHONE>``, ... (one token each)."""
    from pipelines.steps.pii import PII_TYPES

    return [f"<{pii_type}>" for pii_type in PII_TYPES]


def user_symbols(config: TokenizerConfig) -> list[str]:
    """Newline, the placeholders, then the configured extras, without repeats."""
    return list(dict.fromkeys([NEWLINE, *placeholder_symbols(), *config.user_defined_symbols]))


def sentences(text: str, max_bytes: int) -> Iterator[str]:
    """The training sentences of one document: its non-blank lines, long ones split."""
    for line in text.split(NEWLINE):
        if not line.strip():
            continue
        if len(line.encode()) <= max_bytes:
            yield line
        else:
            yield from _split_long(line, max_bytes)


def _split_long(line: str, max_bytes: int) -> Iterator[str]:
    chunk, size = [], 0
    for word in re.findall(r"\S+\s*", line.strip()):
        n = len(word.encode())
        if chunk and size + n > max_bytes:
            yield "".join(chunk).rstrip()
            chunk, size = [], 0
        while n > max_bytes:
            # One "word" over the limit (a run without spaces): cut at a character boundary.
            cut = word.encode()[:max_bytes].decode("utf-8", errors="ignore")
            yield cut
            word = word[len(cut):]
            n = len(word.encode())
        chunk.append(word)
        size += n
    if chunk and "".join(chunk).strip():
        yield "".join(chunk).rstrip()


@dataclass
class _BottomK:
    """The ``k`` items with the smallest keys seen so far (a max-heap on the key)."""

    k: int
    heap: list = field(default_factory=list)
    seen: int = 0
    documents: int = 0

    def offer(self, key: int, sentence: str) -> None:
        self.seen += 1
        if len(self.heap) < self.k:
            heapq.heappush(self.heap, (-key, sentence))
        elif -key > self.heap[0][0]:
            heapq.heapreplace(self.heap, (-key, sentence))

    def smallest(self, n: int) -> list[tuple[int, str]]:
        return sorted((-neg, s) for neg, s in self.heap)[:n]


def allocate(total: int, weights: dict[str, float], sizes: dict[str, list[int]]) -> dict[str, int]:
    """How many sentences each domain gives so that the sample's bytes split by weight.

    ``sizes[d]`` are domain ``d``'s candidate sentence sizes in key order. With a byte
    level ``t``, domain ``d`` takes its longest key-order prefix of at most
    ``t * w_d / sum(w)`` bytes; ``t`` is the largest level at which at most ``total``
    sentences are taken. A domain that runs out stops growing while the others go on, so
    its unused share goes to them by weight. Bisection over a fixed number of rounds
    keeps the result deterministic.
    """
    domains = sorted(d for d in sizes if weights.get(d, 1.0) > 0 and sizes[d])
    if sum(len(sizes[d]) for d in domains) <= total:
        return {d: len(sizes[d]) for d in domains}
    weight_sum = sum(weights.get(d, 1.0) for d in domains)
    prefix = {d: list(itertools.accumulate(sizes[d])) for d in domains}

    def take(level: float) -> dict[str, int]:
        return {d: bisect.bisect_right(prefix[d], level * weights.get(d, 1.0) / weight_sum) for d in domains}

    low, high = 0.0, max(prefix[d][-1] * weight_sum / weights.get(d, 1.0) for d in domains)
    for _ in range(100):
        middle = (low + high) / 2
        if sum(take(middle).values()) <= total:
            low = middle
        else:
            high = middle
    return take(low)


@dataclass
class Sample:
    sentences: list[str]
    sha256: str
    bytes: int
    documents: int
    by_domain: dict[str, dict]


def draw_sample(files: Iterable[str], config: TokenizerConfig, progress: Progress | None = None) -> Sample:
    """Stream the kept files once and return the deterministic, bounded training sample."""
    count = progress or (lambda step, n: None)
    cap = config.input_sentence_size
    pools: dict[str, _BottomK] = {}
    salt = f"{config.seed}\x1f"
    for path in files:
        for batch in iter_batches(path, columns=("id", "text", "domain")):
            seen = 0
            rows = (batch.column(c).to_pylist() for c in ("id", "text", "domain"))
            for doc_id, text, domain in zip(*rows):
                if config.domain_weights.get(domain, 1.0) == 0:
                    continue
                pool = pools.get(domain)
                if pool is None:
                    pool = pools[domain] = _BottomK(cap)
                pool.documents += 1
                prefix = salt + doc_id + "\x1f"
                for n, sentence in enumerate(sentences(text, config.max_sentence_length), start=1):
                    pool.offer(xxhash.xxh64_intdigest(f"{prefix}{n}".encode()), sentence)
                    seen += 1
            count("documents", batch.num_rows)
            count("sentences", seen)
    unknown = sorted(d for d, w in config.domain_weights.items() if w > 0 and d not in pools)
    if unknown:
        raise KeptError(f"domain_weights names {', '.join(unknown)}, found in none of the inputs (domains: "
                        f"{', '.join(sorted(pools)) or 'none'})")
    if not any(p.seen for p in pools.values()):
        raise KeptError("no text to train on: the inputs hold no document of a domain with a weight above 0")
    candidates = {d: pool.smallest(cap) for d, pool in pools.items()}
    alloc = allocate(cap, config.domain_weights, {d: [len(s.encode()) for _, s in c] for d, c in candidates.items()})
    keyed, by_domain = [], {}
    for domain in sorted(pools):
        chosen = candidates[domain][: alloc.get(domain, 0)]
        keyed += chosen
        by_domain[domain] = {
            "weight": config.domain_weights.get(domain, 1.0), "documents": pools[domain].documents,
            "sentences_seen": pools[domain].seen, "sentences": len(chosen),
            "bytes": sum(len(s.encode()) for _, s in chosen),
        }
    keyed.sort()
    chosen = [s for _, s in keyed]
    digest = hashlib.sha256()
    for sentence in chosen:
        digest.update(sentence.encode() + b"\n")
    count("sample", len(chosen))
    return Sample(
        sentences=chosen, sha256=digest.hexdigest(), bytes=sum(d["bytes"] for d in by_domain.values()),
        documents=sum(p.documents for p in pools.values()), by_domain=by_domain,
    )


def trainer_options(config: TokenizerConfig) -> dict:
    """Every option handed to ``SentencePieceTrainer.train`` (recorded in the bundle)."""
    return {
        "model_type": config.model_type,
        "vocab_size": config.vocab_size,
        "character_coverage": config.character_coverage,
        "byte_fallback": config.byte_fallback,
        "split_digits": config.split_digits,
        "split_by_whitespace": True,
        "split_by_number": True,
        "split_by_unicode_script": True,
        "normalization_rule_name": config.normalization_rule_name,
        "add_dummy_prefix": config.add_dummy_prefix,
        "remove_extra_whitespaces": config.remove_extra_whitespaces,
        "allow_whitespace_only_pieces": config.allow_whitespace_only_pieces,
        "max_sentencepiece_length": config.max_sentencepiece_length,
        "max_sentence_length": config.max_sentence_length,
        "input_sentence_size": config.input_sentence_size,
        "shuffle_input_sentence": False,
        "hard_vocab_limit": True,
        "user_defined_symbols": user_symbols(config),
        "unk_id": config.unk_id,
        "bos_id": config.bos_id,
        "eos_id": config.eos_id,
        "pad_id": config.pad_id,
        "num_threads": config.num_threads,
    }


# SentencePiece's progress lines: unigram EM rounds shrink the candidate vocabulary
# ("EM sub_iter=0 size=14440 ..."), BPE logs every 100 merges ("Merged: ... merges=300 ...").
_SPM_PROGRESS = re.compile(r"EM sub_iter=\d+ size=(\d+)|Merged: .* merges=(\d+)")
_SPM_PROBLEM = re.compile(r"^[WEF]\d{4} ")


def train_model(sentences: list[str], options: dict, seed: int, progress: Progress | None = None) -> bytes:
    """The serialized SentencePiece model trained on ``sentences`` with ``options``."""
    import sentencepiece as spm

    spm.set_random_generator_seed(seed)
    writer = io.BytesIO()
    log = _progress_log(progress) if progress else contextlib.nullcontext()
    try:
        with log:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(sentences), model_writer=writer,
                minloglevel=0 if progress else 2, **options,
            )
    except RuntimeError as err:
        # "INTERNAL: src/trainer_interface.cc(744) [...] Vocabulary size too high (32000). ..."
        message = " ".join(str(err).split())
        raise TrainError(f"SentencePiece: {message.split('] ')[-1]}") from None
    return writer.getvalue()


@contextlib.contextmanager
def _progress_log(progress: Progress):
    """Route SentencePiece's log (C++, written to file descriptor 2) through a pipe: its
    progress lines become ``pieces`` counts, its warnings and errors still reach the
    terminal, the rest (a dump of every option, per-piece lines) is dropped. Whatever
    else writes to descriptor 2 meanwhile is dropped too, so a progress reporter must
    write to its own duplicate of the terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    terminal = os.fdopen(os.dup(saved), "w", errors="replace")
    read_end, write_end = os.pipe()
    last = [0]

    def pump() -> None:
        with os.fdopen(read_end, "r", errors="replace") as lines:
            for line in lines:
                found = _SPM_PROGRESS.search(line)
                if found:
                    value = int(found.group(1) or found.group(2))
                    progress("pieces", value - last[0])
                    last[0] = value
                elif _SPM_PROBLEM.match(line):
                    terminal.write(line)
                    terminal.flush()

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    os.dup2(write_end, 2)
    os.close(write_end)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # drops the pipe's last writer: the pump sees end of file
        os.close(saved)
        thread.join()
        terminal.close()


def train_tokenizer(
    inputs: list[str], output: str, config: TokenizerConfig, progress: Progress | None = None
) -> dict:
    """Sample ``inputs`` (kept data), train, freeze into the new bundle ``output``; returns
    its manifest. Refuses an existing bundle before reading anything."""
    from tokenizer.bundle import ensure_new, freeze

    ensure_new(output)
    files = kept_files(inputs)
    for group in files:
        for path in group:
            check_schema(path)
    started = time.monotonic()
    sample = draw_sample([f for group in files for f in group], config, progress)
    sampled = time.monotonic()
    options = trainer_options(config)
    model = train_model(sample.sentences, options, config.seed, progress)
    finished = time.monotonic()
    info = {
        "model_type": config.model_type,
        "trainer_options": options,
        "config": config.model_dump(),
        "sample": {
            "sentences": len(sample.sentences), "bytes": sample.bytes, "documents": sample.documents,
            "sha256": sample.sha256, "by_domain": sample.by_domain,
        },
        "corpora": describe_inputs(inputs, files),
        "seconds": {"sample": round(sampled - started, 2), "train": round(finished - sampled, 2)},
    }
    return freeze(model, info, output)
