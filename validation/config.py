"""The ``validate:`` section of a pipeline config: bounds and severities of the data contracts.

Every check has a name (``id_unique``, ``no_leftover_pii``, ``drop_rates``, ...; the
full list is :data:`CHECKS`) and a severity: ``blocking`` fails the gate, ``warning``
is reported and logged, ``off`` skips the check.

Settings of a corpus, from lowest to highest precedence (the same layering as the
``clean:`` section's domain profiles)::

    the section's own fields  <  built-in domain defaults (BUILTIN_DOMAIN_CHECKS)
                              <  validate.domains.<domain>  <  validate.corpora.<corpus>

For example::

    validate:
      severity: {text_length: blocking}        # every corpus
      language: {max_und_fraction: 0.05}
      domains:
        finance: {drops: {max_reason_fraction: {placeholder: 0.2}}}
      corpora:
        reuters: {severity: {language_und_share: warning}}

Checks over the whole output (schema, uniqueness, accounting, the token files) take
their severity from the top-level ``severity`` only; token bounds are per domain, so
``tokens`` may be set at the top level and under ``domains`` but not under ``corpora``.

This module imports :mod:`pipelines.config` only inside functions, so that the pipeline
schema can hold a ``validate: ValidateConfig`` field without an import cycle.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

Severity = Literal["blocking", "warning", "off"]

#: Column names and Arrow types of the Parquet files against their documented schemas
#: (suite ``schema``).
SCHEMA_CHECKS = ("column_types",)
#: Checks over all kept documents at once (suite ``kept``).
OUTPUT_CHECKS = ("id_unique", "content_hash_unique")
#: ``kept/``, ``rejected/`` and ``quarantine/`` row counts against ``stats.json``.
ACCOUNTING_CHECKS = ("files_match_stats",)
#: Checks of one corpus's kept documents (suite ``kept.<corpus>``).
CORPUS_CHECKS = (
    "text_not_null", "text_not_empty", "text_length", "no_leftover_pii", "no_leftover_markup",
    "language_allowed", "language_und_share",
)
#: Kept fraction and per-reason drop shares of one corpus (suite ``drops.<corpus>``).
DROP_CHECKS = ("drop_rates",)
#: The tokenizer stage's ``documents.parquet`` as a whole (suite ``tokens``) and its
#: manifest (suite ``tokens.manifest``).
TOKEN_FILE_CHECKS = (
    "id_unique", "split_values", "tokenized_ids_are_kept", "every_kept_document_tokenized",
    "manifest_tokens_match", "manifest_documents_match",
)
#: Token counts of one domain (suite ``tokens.<domain>``).
TOKEN_DOMAIN_CHECKS = ("tokens_per_document", "tokens_per_domain")

CHECKS = tuple(dict.fromkeys(
    SCHEMA_CHECKS + OUTPUT_CHECKS + ACCOUNTING_CHECKS + CORPUS_CHECKS + DROP_CHECKS + TOKEN_FILE_CHECKS
    + TOKEN_DOMAIN_CHECKS
))

#: Checks whose failure is only reported unless configured otherwise: a length
#: distribution that shifted is worth a look, not a stop.
DEFAULT_WARNINGS = frozenset({"text_length"})


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextLength(_Strict):
    """Characters per kept document. The floor is the cleaning stage's own minimum
    length (20 characters); the ceiling is about Gopher's 100,000-word cap (Rae et al.
    2021, App. A.1.1) at ~5 characters per word."""

    min: int = Field(20, ge=0)
    max: int = Field(500_000, ge=1)
    mostly: float = Field(0.99, gt=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> TextLength:
        if self.min > self.max:
            raise ValueError(f"min {self.min} exceeds max {self.max}")
        return self


class LanguageChecks(_Strict):
    """``allowed`` defaults to the cleaning profile's ``language.allowed``; ``und`` (no
    confident language: tables, lists) is always allowed, up to ``max_und_fraction``."""

    allowed: list[str] | None = None
    max_und_fraction: float = Field(0.05, ge=0, le=1)


class DropChecks(_Strict):
    """Shares of a corpus's input records. ``max_reason_fraction`` bounds each drop
    reason (``placeholder``, ``duplicate_near``, ...); ``default`` covers reasons not
    named."""

    min_kept_fraction: float = Field(0.2, ge=0, le=1)
    max_quarantined_fraction: float = Field(0.01, ge=0, le=1)
    max_reason_fraction: dict[str, float] = {"default": 0.5}

    @field_validator("max_reason_fraction")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for reason, fraction in value.items():
            if not 0 <= fraction <= 1:
                raise ValueError(f"{reason}: a fraction must be within 0..1 (got {fraction})")
        if "default" not in value:
            raise ValueError("needs a 'default' bound for reasons not named")
        return value

    def reason_bound(self, reason: str) -> float:
        return self.max_reason_fraction.get(reason, self.max_reason_fraction["default"])


class TokensPerDocument(_Strict):
    """Tokens per kept document, the appended EOS included: a kept text has at least one
    token, so 2 is the floor."""

    min: int = Field(2, ge=0)
    max: int = Field(1_000_000, ge=1)
    mostly: float = Field(1.0, gt=0, le=1)


class CharsPerToken(_Strict):
    """Bounds on a domain's characters per token, which bound its total tokens (kept
    characters / max .. kept characters / min). SentencePiece models of 8k-32k pieces
    give about 3.5-4.5 on English prose; 1 means byte fallback everywhere, i.e. a
    tokenizer trained on other text; above 10 means documents were skipped."""

    min: float = Field(1.5, gt=0)
    max: float = Field(10.0, gt=0)


class TokenChecks(_Strict):
    per_document: TokensPerDocument = TokensPerDocument()
    chars_per_token: CharsPerToken = CharsPerToken()


class CorpusChecks(_Strict):
    """The effective settings of one corpus (or, for ``tokens``, one domain)."""

    text_length: TextLength = TextLength()
    language: LanguageChecks = LanguageChecks()
    drops: DropChecks = DropChecks()
    tokens: TokenChecks = TokenChecks()
    severity: dict[str, Severity] = {}

    @field_validator("severity")
    @classmethod
    def _known_checks(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        unknown = sorted(name for name in value if name not in CHECKS)
        if unknown:
            raise ValueError(f"unknown check {', '.join(unknown)} (known: {', '.join(CHECKS)})")
        return value

    def severity_of(self, check: str) -> Severity:
        default = "warning" if check in DEFAULT_WARNINGS else "blocking"
        return self.severity.get(check, default)


#: Measured on the shared samples cleaned with the built-in profiles (2026-11-26):
#: finance keeps 9,950 of 10,955 (90.8 %), drops 7.1 % as ``placeholder`` ("Blah blah
#: blah." briefs) and at most 1.1 % for any other reason, and 7.5 % of what it keeps is
#: ``und`` (earnings tables, quote boards); medical keeps 8,605 of 9,326 (92.3 %), drops
#: 4.3 % as ``duplicate_exact`` and 2.6 % as ``duplicate_near`` (templated MedQuAD
#: answers; 6.6 % in its first 2,000 documents alone), at most 0.6 % for any other
#: reason, and 0.2 % of it is ``und``. The bounds leave about twice that room (1.5x for
#: the near duplicates' worst slice); a cleaning bug that drops most of a corpus, or
#: doubles a reason's share, fails them.
BUILTIN_DOMAIN_CHECKS: dict[str, dict[str, Any]] = {
    "finance": {
        "text_length": {"max": 200_000},  # longest FOMC minutes: 94,744
        "language": {"max_und_fraction": 0.15},
        "drops": {"min_kept_fraction": 0.75, "max_reason_fraction": {"default": 0.03, "placeholder": 0.15}},
    },
    "medical": {
        "text_length": {"max": 100_000},  # longest MedQuAD answer: 24,665
        "language": {"max_und_fraction": 0.02},
        "drops": {
            "min_kept_fraction": 0.75,
            "max_reason_fraction": {"default": 0.03, "duplicate_exact": 0.10, "duplicate_near": 0.10},
        },
    },
}


class ValidateConfig(_Strict):
    """Settings of ``dapt validate``; the fields of :class:`CorpusChecks` are the
    defaults of every corpus."""

    text_length: TextLength = TextLength()
    language: LanguageChecks = LanguageChecks()
    drops: DropChecks = DropChecks()
    tokens: TokenChecks = TokenChecks()
    severity: dict[str, Severity] = {}
    domains: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-domain overrides")
    corpora: dict[str, dict[str, Any]] = Field(default_factory=dict, description="per-corpus overrides")
    examples: int = Field(5, ge=1, le=200, description="example ids reported per failed check")
    data_docs: bool = True

    @model_validator(mode="after")
    def _layers_valid(self) -> ValidateConfig:
        CorpusChecks(severity=self.severity)
        for domain in self.domains:
            self.for_corpus(None, domain)
        for corpus, override in self.corpora.items():
            if "tokens" in override:
                raise ValueError(f"corpora.{corpus}.tokens: token bounds are per domain; set them under domains")
            self.for_corpus(corpus, None)
        return self

    def for_corpus(self, corpus: str | None, domain: str | None) -> CorpusChecks:
        """Effective settings: section < built-in domain < ``domains`` < ``corpora``."""
        from pipelines.config import deep_merge, describe_errors  # lazy: see the module docstring

        merged = self.model_dump(include={"text_length", "language", "drops", "tokens", "severity"})
        layers = [(BUILTIN_DOMAIN_CHECKS.get(domain, {}), "")]
        if domain is not None:
            layers.append((self.domains.get(domain, {}), f"domains.{domain}"))
        if corpus is not None:
            layers.append((self.corpora.get(corpus, {}), f"corpora.{corpus}"))
        where = ""
        for layer, name in layers:
            merged = deep_merge(merged, layer)
            where = name or where
            try:
                CorpusChecks.model_validate(merged)
            except ValidationError as err:
                raise ValueError(describe_errors(err, prefix=where)) from None
        return CorpusChecks.model_validate(merged)

    def for_domain(self, domain: str) -> CorpusChecks:
        return self.for_corpus(None, domain)


def read_pipeline_config(path: str) -> tuple[ValidateConfig, Any]:
    """``(validate section, clean section)`` of a pipeline YAML, both validated.

    The clean section matters here too: the PII check runs the redactor with each
    domain's profile (clinical dates in medical text) and the allowed languages default
    to the ones the cleaning kept.
    """
    from pipelines.config import load_config

    config = load_config(path)
    return config.validation, config.clean
