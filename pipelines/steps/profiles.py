"""Per-domain filter profiles (draft)."""

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


def build_filters(profile: str = "web", overrides: Mapping[str, Mapping[str, Any]] | None = None) -> list[Filter]:
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
        known = [p for p in inspect.signature(cls).parameters if p != "self"]
        for key in kwargs:
            if key not in known:
                raise ValueError(
                    f"unknown option {key!r} for filter {name!r}; known: enabled, {', '.join(known)}"
                )
        if enabled:
            filters.append(cls(**kwargs))
    return filters
