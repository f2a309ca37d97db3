"""Settings of the tokenizer stage: ``TokenizerConfig`` (training a bundle) and
``TokenizeConfig`` (the ``dapt tokenize`` job), both strict: an unknown key is an error.

In a pipeline YAML they are the ``tokenizer:`` and ``tokenize:`` sections::

    tokenizer:
      vocab_size: 32000
      model_type: unigram             # or bpe
      input_sentence_size: 2000000    # the bounded training sample, in sentences
      domain_weights: {finance: 2, medical: 1}
    tokenize:
      val_fraction: 0.01

Why each training default (``TokenizerConfig``):

* ``model_type=unigram``: BloombergGPT chose a Unigram tokenizer over greedy merges
  (Wu et al. 2023, Sec. 2.3); ``bpe`` is what LLaMA used (Touvron et al. 2023, Sec. 2.1)
  and trains about 8x faster here (``../shared/STACK.md``).
* ``byte_fallback`` and ``split_digits``: LLaMA (Touvron et al. 2023, Sec. 2.1) "split all
  numbers into individual digits, and fallback to bytes to decompose unknown UTF-8
  characters": no ``<unk>`` in training data, and prices, ratios and fiscal years are
  spelled digit by digit instead of by whatever digit groups happened to be frequent.
* ``normalization_rule_name=identity``: the corpus stage already applied NFC and kept
  NFKC out on purpose (NFKC rewrites ``10²``, ``½``, ``µg``); identity also makes
  ``decode(encode(text)) == text`` for every text, which generation relies on.
* ``remove_extra_whitespaces=False`` with ``allow_whitespace_only_pieces=True``: earnings
  tables and indented answers are laid out with runs of spaces; collapsing them would
  make decoding lossy, and whitespace-only pieces keep a run of spaces to a few tokens.
* ``character_coverage=0.9999``: SentencePiece recommends 1.0 for small alphabets
  (``doc/options.md``); 0.9999 leaves the rarest characters of the sample (stray symbols
  seen a handful of times) to byte fallback instead of spending vocabulary on them.
* ``num_threads=8``, fixed: the unigram EM result depends on the thread count (measured:
  1, 2 and 4 threads give three different models on the same sample), so the count is a
  training option like any other, not the machine's core count.
* Special ids ``unk=0, bos=1, eos=2, pad=3``: SentencePiece's defaults plus a pad id for
  batched generation. ``\\n`` and the PII placeholders ``<EMAIL>``, ``<PHONE>``, ... are
  always user-defined symbols (one token each, never split), see :mod:`tokenizer.train`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: Pieces SentencePiece reserves with byte fallback: one per byte value.
BYTE_PIECES = 256


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenizerConfig(_Strict):
    """How ``dapt tokenizer train`` samples the kept text and trains SentencePiece."""

    model_type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = Field(32000, ge=300, le=1 << 22)
    character_coverage: float = Field(0.9999, gt=0, le=1)
    byte_fallback: bool = True
    split_digits: bool = True
    normalization_rule_name: Literal["identity", "nmt_nfkc", "nfkc", "nmt_nfkc_cf", "nfkc_cf"] = "identity"
    add_dummy_prefix: bool = True
    remove_extra_whitespaces: bool = False
    allow_whitespace_only_pieces: bool = True
    max_sentencepiece_length: int = Field(16, ge=1, le=512)
    input_sentence_size: int = Field(2_000_000, ge=1, description="sentences in the training sample, at most")
    max_sentence_length: int = Field(4192, ge=64, description="bytes; longer lines are split at whitespace")
    domain_weights: dict[str, float] = Field(
        default_factory=dict,
        description="shares of the sample's bytes when the text exceeds input_sentence_size sentences (else all "
        "is used); unlisted domains weigh 1, 0 leaves a domain out",
    )
    user_defined_symbols: list[str] = Field(default_factory=list, description="beyond newline and the PII placeholders")
    seed: int = Field(0, ge=0, description="salt of the sample's hash order and SentencePiece's random generator")
    num_threads: int = Field(8, ge=1, le=1024)
    unk_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    pad_id: int = 3

    @model_validator(mode="after")
    def _consistent(self) -> TokenizerConfig:
        ids = {"unk_id": self.unk_id, "bos_id": self.bos_id, "eos_id": self.eos_id, "pad_id": self.pad_id}
        used = [v for v in ids.values() if v >= 0]
        if self.unk_id < 0 or self.eos_id < 0:
            raise ValueError("unk_id and eos_id must be >= 0 (every document ends with EOS)")
        if len(set(used)) != len(used):
            raise ValueError(f"special ids must differ, got {ids}")
        if max(used) >= len(used):
            raise ValueError(f"special ids must be the first ids 0..{len(used) - 1}, got {ids}")
        for domain, weight in self.domain_weights.items():
            if weight < 0:
                raise ValueError(f"domain_weights.{domain} must be >= 0 (got {weight})")
        reserved = len(used) + (BYTE_PIECES if self.byte_fallback else 0) + len(self.user_defined_symbols)
        if self.vocab_size <= reserved + 100:
            raise ValueError(
                f"vocab_size {self.vocab_size} leaves almost no room for learned pieces after "
                f"{reserved} reserved ones (special ids, byte pieces, user symbols)"
            )
        return self


class TokenizeConfig(_Strict):
    """How ``dapt tokenize`` splits and shards the encoded documents."""

    val_fraction: float = Field(0.01, ge=0, lt=1, description="share of documents in the validation split, by id hash")
    split_salt: str = Field("dapt-split-v1", min_length=1, description="changes which documents are held out")
    tokens_per_shard: int = Field(
        100_000_000, ge=1,
        description="target tokens per .bin shard (uint16: 200 MB); a shard holds one kept file's documents",
    )
    batch_size: int = Field(512, ge=1, description="documents per batched encode call")
    num_threads: int = Field(0, ge=0, description="encode threads per worker; 0 = all cores (ids do not depend on it)")


class TokenizerConfigError(ValueError):
    """A configuration problem, already phrased as one line per problem."""


def parse_section(model: type[_Strict], data: Any, source: str) -> _Strict:
    """Validate one section; errors name the key (``tokenizer.vocab_sise: unknown key``)."""
    from pipelines.config import describe_errors

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise TokenizerConfigError(f"{source}: expected a mapping, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = [
            f"{source}: {line[len('<top>: '):]}" if line.startswith("<top>: ") else f"{source}.{line}"
            for line in describe_errors(err).splitlines()
        ]
        raise TokenizerConfigError("\n".join(lines)) from None


def read_section(path: str | Path, name: str) -> dict:
    """The ``name:`` section of a pipeline YAML (empty when the file has none)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise TokenizerConfigError(f"{path}: cannot read config: {err.strerror}") from None
    except yaml.YAMLError as err:
        raise TokenizerConfigError(f"{path}: not valid YAML: {err}".splitlines()[0]) from None
    if not isinstance(data, dict):
        raise TokenizerConfigError(f"{path}: expected a mapping at the top level")
    section = data.get(name)
    if section is not None and not isinstance(section, dict):
        raise TokenizerConfigError(f"{path}: {name}: expected a mapping, got {type(section).__name__}")
    return section or {}


def load_config(model: type[_Strict], name: str, path: str | Path | None, overrides: dict[str, Any]) -> _Strict:
    """The ``name:`` section of ``path`` (if given) with ``overrides`` (command-line flags) on top."""
    section = read_section(path, name) if path else {}
    source = f"{path}: {name}" if path else name
    return parse_section(model, {**section, **{k: v for k, v in overrides.items() if v is not None}}, source)
