"""Per-domain filter profiles: which quality rules run, and with which thresholds.

``web`` is every rule of :mod:`pipelines.steps.filters` at its paper default. The
domain profiles relax only rules measured to misfire on real domain text (the shared
samples after markup stripping: ``finance`` = Reuters-21578 + FOMC minutes, 10,955
docs; ``medical`` = MedQuAD + PubMedQA + NCBI-disease, 9,326 docs), by the smallest
round step that keeps the legitimate documents, and keep every rule that drops junk:
placeholders, empty text and degenerate repetition go in every profile.

Whole chain: ``web`` drops 60.9 % of finance (98.8 % of the Reuters earnings tables,
95.7 % of the FOMC minutes) and 30.7 % of medical (all 986 answers under 50 words).
``finance`` drops 7.5 % of finance, of which 7.2 % are the 785 "Blah blah blah."
placeholders, 0.4 % of the earnings tables and no FOMC minutes; ``medical`` drops
0.8 % of medical and 1.3 % of its short answers.

Per rule, with the share of the sample the rule drops on its own at the paper default
(fin = finance sample, med = medical sample):

==============================  =====  ==============  ==============  ================================================
rule (paper default)            web    finance         medical         why
==============================  =====  ==============  ==============  ================================================
empty; placeholder;             on     on              on              junk everywhere: all 785 Reuters placeholders,
min_length (20 chars, 5 words)                                         7 MedQuAD lone questions, 3 stray headings
FineWeb line punct. <= 0.12     on     off             off             fin 16.1 % (hard-wrapped wire lines, tables,
                                                                       one-line FOMC files), med 11.4 % (one-line
                                                                       answers that end in a list)
FineWeb short lines >= 0.67     on     off             on              fin 4.8 % (tables, quote boards), med 0.04 %
FineWeb dup-line chars >= 0.1   on     off             on              fin 0.23 % (period blocks repeat rows),
                                                                       med 0.01 %
FineWeb newline/word > 0.3      on     off             on              fin 0.40 % (price lists), med 0.04 %
C4 "lorem ipsum", "{"           on     on              on              0.01 % each, cheap filler/code catch
C4 >= 3 sentences in lines      on     off             off             fin 60.2 % (97.8 % of earnings tables),
with end punct. and 5+ words                                           med 24.2 %: lines here are layout, not
                                                                       web-extracted paragraphs
Gopher >= 50 words              on     off             off             fin 22.4 % (headlines, ticks, tables), med
                                                                       10.6 % (terse answers); min_length is the floor
Gopher mean word length 3..10   on     2..15           on              fin 0.13 %: quote boards reach 2.77, dot-leader
                                                                       tables 11.95; med 0.02 % (two non-answers)
Gopher alpha words >= 0.8       on     0.2             0.6             fin 14.6 % (85 % of earnings tables; lowest
                                                                       Reuters doc 0.25); med 0.43 % ("1 in 10,000"
                                                                       prevalence sentences; lowest 0.71)
Gopher stop words >= 2          on     off             off             fin 20.8 % (tables); med 1.6 %, all but one
                                                                       under 50 words
Gopher bullet lines <= 0.9      on     on              off             med 0.70 %: one-line bulleted summaries
Gopher #/ellipsis ratio, ...    on     on              on              <= 0.01 %
ellipsis lines, <= 100k words
Gopher dup lines, paragraphs    on     on              on              fin 0.05 %: wire stories with a paragraph
0.30 / 0.20                                                            sent twice, real junk
Gopher top 2/3/4-gram           on     +0.05, only at  +0.05, only at  fin 0.70 %, med 1.93 %: row labels ("mln vs"),
0.20 / 0.18 / 0.16                     >= 50 words     >= 50 words     multi-word disease names; relaxed: fin 0.08 %,
                                                                       med 0.54 % (mostly GHR link lists)
Gopher dup 5..10-gram           on     +0.05           0.5 for all n   fin 0.58 %, 9 of 116 FOMC minutes (formulaic,
0.15 .. 0.10                                                           max 0.185); med 3.98 %: CancerGov "Key Points"
                                                                       recaps (up to 0.495), 39 % of CancerGov
==============================  =====  ==============  ==============  ================================================

Order is cheapest first (measured per document): empty, placeholder, min_length,
fineweb_quality, c4, gopher_quality, gopher_repetition; the first rule that fires
names the drop reason.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from pipelines.steps.base import Filter
from pipelines.steps.filters import (
    C4Filter,
    EmptyFilter,
    FineWebQualityFilter,
    GopherQualityFilter,
    GopherRepetitionFilter,
    MinLengthFilter,
    PlaceholderFilter,
)

FILTERS: dict[str, type[Filter]] = {
    cls.name: cls
    for cls in (
        EmptyFilter,
        PlaceholderFilter,
        MinLengthFilter,
        FineWebQualityFilter,
        C4Filter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )
}
"""Every filter by its drop reason, in run order."""

# Domain vocabulary repeats long n-grams by nature: table row labels ("mln vs", "Avg
# shrs") and multi-word disease names.
_DOMAIN_TOP_NGRAM = {2: 0.25, 3: 0.23, 4: 0.21}

PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "web": {},
    "finance": {
        "fineweb_quality": {"enabled": False},
        "c4": {"min_sentences": None},
        "gopher_quality": {
            "min_doc_words": None,
            "min_avg_word_length": 2,
            "max_avg_word_length": 15,
            "min_alpha_words_ratio": 0.2,
            "min_stop_words": None,
        },
        "gopher_repetition": {
            "top_ngram_min_words": 50,
            "top_ngram_char_frac": _DOMAIN_TOP_NGRAM,
            "dup_ngram_char_frac": {5: 0.20, 6: 0.19, 7: 0.18, 8: 0.17, 9: 0.16, 10: 0.15},
        },
    },
    "medical": {
        "fineweb_quality": {"min_line_punct_ratio": None},
        "c4": {"min_sentences": None},
        "gopher_quality": {
            "min_doc_words": None,
            "max_bullet_lines_ratio": None,
            "min_alpha_words_ratio": 0.6,
            "min_stop_words": None,
        },
        "gopher_repetition": {
            "top_ngram_min_words": 50,
            "top_ngram_char_frac": _DOMAIN_TOP_NGRAM,
            "dup_ngram_char_frac": {n: 0.5 for n in range(5, 11)},
        },
    },
}
"""Per profile, per filter name: keyword arguments, plus ``enabled`` (default true)."""


def build_filters(
    profile: str = "web", overrides: Mapping[str, Mapping[str, Any]] | None = None
) -> list[Filter]:
    """The filters of ``profile`` in run order, with ``overrides`` applied on top.

    ``overrides`` maps a filter name to keyword arguments for it, e.g.
    ``{"gopher_quality": {"min_doc_words": 20}}`` or ``{"c4": {"enabled": False}}``;
    options not given keep the profile's value. An unknown profile, filter name or
    option raises ``ValueError`` with a one-line message naming it.
    """
    if profile not in PROFILES:
        raise ValueError(f"unknown filter profile {profile!r}; known: {', '.join(PROFILES)}")
    settings = {name: dict(kwargs) for name, kwargs in PROFILES[profile].items()}
    for name, kwargs in (overrides or {}).items():
        if name not in FILTERS:
            raise ValueError(f"unknown filter {name!r} in overrides; known: {', '.join(FILTERS)}")
        if not isinstance(kwargs, Mapping):
            raise ValueError(f"overrides for filter {name!r} must be a mapping of options, got {kwargs!r}")
        settings.setdefault(name, {}).update(kwargs)
    filters: list[Filter] = []
    for name, cls in FILTERS.items():
        kwargs = dict(settings.get(name, {}))
        enabled = kwargs.pop("enabled", True)
        if not isinstance(enabled, bool):
            raise ValueError(f"option 'enabled' of filter {name!r} must be true or false, got {enabled!r}")
        known = list(inspect.signature(cls).parameters)
        for key in kwargs:
            if key not in known:
                raise ValueError(f"unknown option {key!r} for filter {name!r}; known: enabled, {', '.join(known)}")
        if enabled:
            filters.append(cls(**kwargs))
    return filters
