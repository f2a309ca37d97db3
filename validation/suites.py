"""Expectation suites built from the config: what each check asserts, on which table.

=====================  ============================  =============================================
suite                  table (one batch)             checks
=====================  ============================  =============================================
``schema``             one row per documented        ``column_types``: present, with the Arrow type
                       column of each file           of ``KEPT_SCHEMA`` (and ``tokens_schema()``)
``kept``               all kept documents            ``id_unique``, ``content_hash_unique`` (dedup
                                                     is across corpora, so uniqueness is too)
``accounting``         row counts, files vs          ``files_match_stats``
                       ``stats.json``
``kept.<corpus>``      the corpus's kept documents   ``text_not_null``, ``text_not_empty``,
                                                     ``text_length``, ``no_leftover_pii``,
                                                     ``no_leftover_markup``, ``language_allowed``,
                                                     ``language_und_share``
``drops.<corpus>``     drop measures of the corpus   ``drop_rates``
``tokens``             ``documents.parquet``         ``id_unique``,
                                                     ``split_values``, ``tokenized_ids_are_kept``,
                                                     ``every_kept_document_tokenized``
``tokens.manifest``    per domain, files vs          ``manifest_tokens_match``,
                       ``manifest.json``             ``manifest_documents_match``
``tokens.<domain>``    the domain's documents        ``tokens_per_document``, ``tokens_per_domain``
=====================  ============================  =============================================

A check is one Great Expectations expectation. Its severity is GE's own ``severity``
field (``blocking`` = critical, ``warning`` = warning) and is also kept in ``meta`` with
the check's name, which is how results are mapped back to checks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from pipelines.output import KEPT_SCHEMA
from validation.config import CorpusChecks, ValidateConfig
from validation.ge import FailureSeverity, gxe
from validation.tables import (
    SPLITS,
    CleanOutput,
    TokenOutput,
    accounting_table,
    drop_table,
    manifest_table,
    schema_table,
    tokens_schema,
)

_GE_SEVERITY = {"blocking": FailureSeverity.CRITICAL, "warning": FailureSeverity.WARNING}


@dataclass
class SuitePlan:
    """One suite, the frame it validates, and the column that names example rows."""

    name: str
    frame: pd.DataFrame
    index_column: str | None
    expectations: list = field(default_factory=list)

    def add(self, check: str, severity: str, expectation, why: str) -> None:
        if severity == "off":
            return
        expectation.severity = _GE_SEVERITY[severity]
        expectation.meta = {"check": check, "severity": severity}
        expectation.notes = f"**{severity}**: {why}"
        self.expectations.append(expectation)


def schema_suite(output: CleanOutput, tokens: TokenOutput | None, config: ValidateConfig) -> SuitePlan:
    """Arrow types compared as written, so float64 for float32 or a string column of
    numbers fails."""
    files = {"kept": (output.kept_schema, KEPT_SCHEMA)}
    if tokens is not None:
        files["tokens"] = (tokens.schema, tokens_schema())
    plan = SuitePlan("schema", schema_table(files), "column")
    plan.add(
        "column_types", config.for_corpus(None, None).severity_of("column_types"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="actual", column_B="expected"),
        "every documented column is present with its documented type (extra columns are allowed)",
    )
    return plan


def output_suites(
    output: CleanOutput, config: ValidateConfig, allowed_languages: dict[str, list[str]]
) -> list[SuitePlan]:
    """The suites over a ``dapt corpus clean`` output.

    ``allowed_languages`` maps a domain to its cleaning profile's ``language.allowed``,
    used where the config does not name the allowed languages itself.
    """
    top = config.for_corpus(None, None)
    kept = output.kept
    index = "id" if "id" in kept else None

    whole = SuitePlan("kept", _columns(kept, "id", "content_hash"), index)
    for column in ("id", "content_hash"):
        whole.add(
            f"{column}_unique", top.severity_of(f"{column}_unique"),
            gxe.ExpectColumnValuesToBeUnique(column=column),
            f"`{column}` is unique across all corpora",
        )

    accounting = SuitePlan("accounting", accounting_table(output), "measure")
    accounting.add(
        "files_match_stats", top.severity_of("files_match_stats"),
        gxe.ExpectColumnPairValuesToBeEqual(column_A="in_files", column_B="in_stats"),
        "the Parquet files hold exactly the records stats.json accounts for",
    )

    plans = [whole, accounting]
    for corpus, domain in output.corpora.items():
        checks = config.for_corpus(corpus, domain)
        frame = kept[kept["corpus"] == corpus].reset_index(drop=True) if "corpus" in kept else kept.iloc[:0]
        frame = _columns(frame, "id", "text", "text_length", "leftover_pii", "leftover_markup", "language")
        plans.append(_corpus_suite(corpus, frame, index, checks, checks.language.allowed or allowed_languages[domain]))
        drops = SuitePlan(f"drops.{corpus}", drop_table(output, corpus, checks.drops), "measure")
        drops.add(
            "drop_rates", checks.severity_of("drop_rates"),
            gxe.ExpectColumnPairValuesAToBeGreaterThanB(column_A="max_fraction", column_B="fraction", or_equal=True),
            f"at least {checks.drops.min_kept_fraction:g} of the input is kept (`dropped` at most "
            f"{1 - checks.drops.min_kept_fraction:g}), at most {checks.drops.max_quarantined_fraction:g} is "
            "quarantined, and each drop reason stays within its share",
        )
        plans.append(drops)
    return plans


def _columns(frame: pd.DataFrame, *names: str) -> pd.DataFrame:
    """Only the columns a suite's checks read: GE fingerprints every column of a batch
    (``pandas_data_fingerprint``), which for ``metadata`` and ``title`` is CPU spent for
    nothing. A missing one stays missing, for its check to report."""
    return frame[[n for n in names if n in frame]]


def _corpus_suite(
    corpus: str, frame: pd.DataFrame, index: str | None, checks: CorpusChecks, allowed: list[str]
) -> SuitePlan:
    plan = SuitePlan(f"kept.{corpus}", frame, index)
    sev = checks.severity_of
    length = checks.text_length
    plan.add(
        "text_not_null", sev("text_not_null"), gxe.ExpectColumnValuesToNotBeNull(column="text"),
        "every document has a text",
    )
    plan.add(
        "text_not_empty", sev("text_not_empty"), gxe.ExpectColumnValuesToMatchRegex(column="text", regex=r"\S"),
        "no text is empty or only whitespace",
    )
    plan.add(
        "text_length", sev("text_length"),
        gxe.ExpectColumnValuesToBeBetween(
            column="text_length", min_value=length.min, max_value=length.max, mostly=length.mostly
        ),
        "characters per document within the domain's bounds (text_length is computed from text)",
    )
    plan.add(
        "no_leftover_pii", sev("no_leftover_pii"), gxe.ExpectColumnValuesToBeNull(column="leftover_pii"),
        "the redactor's own patterns (pipelines.steps.pii.find_pii, the domain's profile) find nothing",
    )
    plan.add(
        "no_leftover_markup", sev("no_leftover_markup"), gxe.ExpectColumnValuesToBeNull(column="leftover_markup"),
        "no tag or entity matches pipelines.steps.markup.LEFTOVER_MARKUP",
    )
    plan.add(
        "language_allowed", sev("language_allowed"),
        gxe.ExpectColumnValuesToBeInSet(column="language", value_set=sorted(set(allowed)) + ["und"]),
        "every document is in an allowed language, or und (no confident language)",
    )
    und = checks.language.max_und_fraction
    plan.add(
        "language_und_share", sev("language_und_share"),
        gxe.ExpectColumnValuesToNotBeInSet(column="language", value_set=["und"], mostly=round(1 - und, 12)),
        f"at most {und:g} of the documents have no confident language",
    )
    return plan


def token_suites(tokens: TokenOutput, output: CleanOutput, config: ValidateConfig) -> list[SuitePlan]:
    """The suites over the tokenizer stage's ``documents.parquet`` and manifest."""
    top = config.for_corpus(None, None)
    documents = tokens.documents
    index = "id" if "id" in documents else None

    whole = SuitePlan("tokens", documents, index)
    whole.add(
        "id_unique", top.severity_of("id_unique"), gxe.ExpectColumnValuesToBeUnique(column="id"),
        "one row per document",
    )
    whole.add(
        "split_values", top.severity_of("split_values"),
        gxe.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS)),
        "every document is in train or val",
    )
    whole.add(
        "tokenized_ids_are_kept", top.severity_of("tokenized_ids_are_kept"),
        gxe.ExpectColumnValuesToBeInSet(column="in_kept", value_set=[True]),
        "only kept documents were tokenized (in_kept: the id is in kept/)",
    )
    whole.add(
        "every_kept_document_tokenized", top.severity_of("every_kept_document_tokenized"),
        gxe.ExpectTableRowCountToEqual(value=len(output.kept)),
        "as many tokenized documents as kept ones (with the two checks above: the same ids)",
    )

    manifest = SuitePlan("tokens.manifest", manifest_table(tokens), "domain")
    for measure in ("tokens", "documents"):
        check = f"manifest_{measure}_match"
        manifest.add(
            check, top.severity_of(check),
            gxe.ExpectColumnPairValuesToBeEqual(column_A=measure, column_B=f"manifest_{measure}"),
            f"{measure} per domain in documents.parquet agree with manifest.json by_domain",
        )

    plans = [whole, manifest]
    kept = output.kept
    kept_chars = kept.groupby("domain")["text_length"].sum() if "domain" in kept else pd.Series(dtype="int64")
    domains = sorted(set(documents["domain"].dropna())) if "domain" in documents else []
    for domain in domains:
        checks = config.for_domain(domain)
        per_doc, ratio = checks.tokens.per_document, checks.tokens.chars_per_token
        chars = int(kept_chars.get(domain, 0))
        plan = SuitePlan(f"tokens.{domain}", documents[documents["domain"] == domain].reset_index(drop=True), index)
        plan.add(
            "tokens_per_document", checks.severity_of("tokens_per_document"),
            gxe.ExpectColumnValuesToBeBetween(
                column="n_tokens", min_value=per_doc.min, max_value=per_doc.max, mostly=per_doc.mostly
            ),
            "tokens per document (EOS included) within bounds",
        )
        plan.add(
            "tokens_per_domain", checks.severity_of("tokens_per_domain"),
            gxe.ExpectColumnSumToBeBetween(
                column="n_tokens", min_value=int(chars / ratio.max), max_value=int(chars / ratio.min) + 1
            ),
            f"the domain's {chars:,} kept characters give {ratio.min:g} to {ratio.max:g} characters per token",
        )
        plans.append(plan)
    return plans
