"""The RE2 pre-filter: wherever a Python pattern matches ASCII text, its RE2 superset
matches too, checked by Arrow's RE2 itself on constructs the PII and markup patterns use
and on mutated real identifiers."""

from __future__ import annotations

import random
import re

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from pii_fixture import FAMILIES
from pipelines.steps.markup import LEFTOVER_MARKUP
from pipelines.steps.pii import PII_PATTERNS
from pipelines.steps.re2_superset import may_match, superset


def _re2_matches(pattern: re.Pattern[str], texts: list[str]) -> list[bool]:
    return pc.match_substring_regex(pa.array(texts), superset(pattern)).to_pylist()


CONSTRUCTS = [
    # (pattern, texts it matches, texts it does not match and the superset rules out)
    (r"(?i)member\s+id", ["MEMBER  Id", "member\x0bid"], ["member_id"]),
    (r"(?<![\w.])9\d(?=\s?yo)", ["a 92 yo man", "92yo"], ["a.92 yo", "92 y"]),  # lookbehind, trailing lookahead
    (r"\d(?<![\w+/.,].)\d\d(?P<s>[- ])\d\d(?P=s)\d{4}", ["ssn 123-45-6789", "123 45 6789"], ["a123-45-6789", "1.123-45-6789"]),
    (r"\bdl\b\s*\d{4}", ["dl 1234", "(dl 1234"], ["handle 1234", "dl1234"]),
    (r"[^\s<>]{3}@x", ["abc@x"], ["a c@x"]),
    (r"a(?=b)b", ["ab"], ["ac"]),  # a lookahead before more pattern is dropped, not consumed
    (r"x(?:y(?=z))?", ["xyz", "xq"], ["q"]),
    # an alternative that is only a lookahead: a label followed by "no" or by a colon
    (r"(?i)\bgroup\s*(?:no|(?=\s*:))\s*:?\s*\w{4}", ["Group: 1234", "group no 1234"], ["group therapy"]),
]


@pytest.mark.parametrize("pattern, positives, negatives", CONSTRUCTS)
def test_superset_matches_where_python_does_and_rules_out_the_rest(pattern, positives, negatives):
    rx = re.compile(pattern)
    assert all(rx.search(t) for t in positives)
    assert all(_re2_matches(rx, positives))
    assert not any(rx.search(t) for t in negatives)
    assert not any(_re2_matches(rx, negatives))


def test_non_ascii_and_null_texts():
    texts = pa.array(["n\u00e4me 92 yo", "plain", None])
    assert may_match(texts, superset(re.compile(r"zzz"))).to_pylist() == [True, False, False]
    assert may_match(texts, superset()).to_pylist() == [True, False, False]  # no pattern matches nothing


def _mutations(text: str, rng: random.Random, n: int) -> list[str]:
    alphabet = "0123456789 -./:#()+@aAbBxX\n"
    out = []
    for _ in range(n):
        chars = list(text)
        for _ in range(rng.randint(1, 3)):
            i = rng.randrange(len(chars))
            op = rng.random()
            if op < 0.4:
                chars[i] = rng.choice(alphabet)
            elif op < 0.7:
                del chars[i]
            else:
                chars.insert(i, rng.choice(alphabet))
        out.append("".join(chars))
    return out


def test_superset_of_every_detector_on_mutated_identifiers():
    """Identifiers of every type in their carrier sentences, and random edits of them
    (which make the Python patterns match, match elsewhere, or fail): wherever a
    detector's own regex finds anything, its superset matches."""
    rng = random.Random(11)
    texts = []
    for family in FAMILIES.values():
        for value in family.values:
            for carrier in family.carriers:
                text = carrier.format(value)
                if text.isascii():
                    texts += [text, *_mutations(text, rng, 4)]
    detectors = [det for dets in PII_PATTERNS.values() for det in dets]
    for det in (*detectors, LEFTOVER_MARKUP):
        rx = det if isinstance(det, re.Pattern) else det.regex
        wanted = [t for t in texts if rx.search(t)]
        assert all(_re2_matches(rx, wanted)) if wanted else True, rx.pattern
    assert sum(1 for t in texts for det in detectors if det.regex.search(t)) > len(texts) // 2
