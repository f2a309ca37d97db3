"""Document quality filters (datatrove-style: one small class per rule family).

Filters run after markup stripping and boilerplate removal, on ``doc["text"]``: plain
text, paragraphs separated by blank lines, lines by ``"\\n"``. Every filter is a
:class:`~pipelines.steps.base.Filter`; its ``name`` is the drop reason and the detail
string names the rule that fired and the measured value. Thresholds are constructor
keyword arguments whose defaults are the published numbers (cited per class); the
per-domain relaxations live in :mod:`pipelines.steps.profiles`.

Shared conventions, so that all rules measure the same things:

* a *word* is a whitespace-separated token (:func:`split_words`), punctuation attached;
* a *line* is a stripped, non-empty ``"\\n"``-separated line (:func:`split_lines`);
  a *paragraph* is a stripped, non-empty blank-line-separated block
  (:func:`split_paragraphs`);
* a *duplicate* line/paragraph/n-gram is every copy beyond the first, i.e. the part a
  deduplicator would remove; a text that is one paragraph twice is 50 % duplicate,
  not 100 %. The papers leave the first copy ambiguous; this reading never calls a
  text more redundant than it is.
* character fractions for n-grams are over word characters (whitespace excluded),
  so layout whitespace does not dilute them.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import accumulate, compress
from math import inf
from operator import mul, ne
from types import MappingProxyType

from pipelines.steps.base import Doc, Filter

__all__ = [
    "C4Filter",
    "EmptyFilter",
    "FineWebQualityFilter",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "MinLengthFilter",
    "PlaceholderFilter",
    "split_lines",
    "split_paragraphs",
    "split_words",
]


# The filters of one chain run back to back on the same text object, so a one-entry
# cache means the text is split once per document, not once per filter. Tuples, because
# every caller gets the same object.
@lru_cache(maxsize=1)
def split_words(text: str) -> tuple[str, ...]:
    """Whitespace tokens: the one word definition every filter uses (C-speed, no regex)."""
    return tuple(text.split())


@lru_cache(maxsize=1)
def split_lines(text: str) -> tuple[str, ...]:
    """Stripped non-empty lines."""
    return tuple(line for line in map(str.strip, text.split("\n")) if line)


_PARAGRAPH_BREAK = re.compile(r"\n[ \t\r\f\v]*\n")


def split_paragraphs(text: str) -> list[str]:
    """Stripped non-empty blocks separated by one or more blank lines."""
    return [p for p in map(str.strip, _PARAGRAPH_BREAK.split(text)) if p]


def _duplicates(segments: Sequence[str]) -> tuple[int, int]:
    """(number, characters) of copies beyond the first; set arithmetic keeps it in C."""
    unique = set(segments)
    return len(segments) - len(unique), sum(map(len, segments)) - sum(map(len, unique))


def _fmt(x: float) -> str:
    return f"{x:.3g}"


class EmptyFilter(Filter):
    """Drop documents whose text is empty or whitespace only (BOM-only files, bodies lost
    to markup stripping)."""

    name = "empty"

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc.get("text") or ""
        if not text:
            return False, "empty text"
        if text.isspace():
            return False, f"whitespace-only text ({len(text)} chars)"
        return True


class MinLengthFilter(Filter):
    """Drop documents too short to carry any context.

    Defaults: ``min_chars=20``, ``min_words=5``. This is a domain-agnostic floor, not a
    quality rule (Gopher's 50-word minimum is in :class:`GopherQualityFilter`, where the
    web profile applies it), set from the domain samples: the shortest real documents
    are a Reuters index tick (``"MOODY'S COMMODITY INDEX-APR 07 926.0"``, 5 words) and a
    one-sentence MedQuAD answer (``"The prevalence of BPES is unknown."``, 34 chars);
    below them there are only stray headings ("Topics", "Frequently Asked Queestions
    (FAQs)"), which have no next-token context worth training on.
    """

    name = "min_length"

    def __init__(self, min_chars: int = 20, min_words: int = 5):
        self.min_chars = min_chars
        self.min_words = min_words

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc["text"]
        n_chars = len(text.strip())
        if n_chars < self.min_chars:
            return False, f"{n_chars} chars < {self.min_chars}"
        n_words = len(split_words(text))
        if n_words < self.min_words:
            return False, f"{n_words} words < {self.min_words}"
        return True


# Whole-body placeholder phrases. Anchored alternatives, so a real body fails on its
# first word and the scan costs nothing.
_PLACEHOLDER_PHRASES = (
    r"blah(?:[\s,.;:!-]+blah)*",
    r"lorem\s+ipsum\b.*",
    r"tb[acd]",
    r"to\s+be\s+(?:announced|confirmed|determined|added)",
    r"coming\s+soon",
    r"no\s+(?:text|content|body|abstract|description)(?:\s+available)?",
    r"n/?a",
    r"\[?(?:deleted|removed)\]?",
    r"(?:insert\s+|your\s+)?(?:text|content)\s+(?:goes\s+)?here",
    r"placeholder(?:\s+text)?",
    r"to\s*do",
    r"test(?:ing)?",
    r"xxx+",
    r"null|none|undefined|empty",
)
_PHRASE = "(?:" + "|".join(_PLACEHOLDER_PHRASES) + ")"
_PLACEHOLDER_BODY = re.compile(
    rf"[\W_]*{_PHRASE}(?:[\W_]+{_PHRASE})*[\W_]*", re.IGNORECASE | re.DOTALL
)


_LONE_QUESTION = re.compile(r"[^\n.!?]{1,200}\?")


def _shorten(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


class PlaceholderFilter(Filter):
    """Drop documents whose body is only placeholder text ("Blah blah blah.", "Lorem
    ipsum ...", "TBD", "No text", "[deleted]" ...) or, with ``drop_lone_question``
    (default on), only one short question: an answer slot that restates the question
    instead of answering it (MedQuAD GARD "answers" such as "What are the symptoms of
    Bell's palsy?", 7 in the medical sample).

    The markup step puts a title first ("TITLE\n\nBlah blah blah."), so the body is
    the whole text or, when the first paragraph is a single line of at most
    ``max_title_chars`` characters, the text after it; a longer or multi-line first
    paragraph is content and is never skipped. Reuters-21578 has 785 such BRIEF items in
    the finance sample: a headline over a placeholder body. A title with no body at all
    is a headline, not a placeholder, and is left to the length rules.
    """

    name = "placeholder"

    def __init__(self, max_title_chars: int = 200, drop_lone_question: bool = True):
        self.max_title_chars = max_title_chars
        self.drop_lone_question = drop_lone_question

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc["text"].strip()
        bodies = [text]
        head, sep, rest = text.partition("\n\n")
        if sep and "\n" not in head and len(head.strip()) <= self.max_title_chars:
            bodies.append(rest.strip())
        for body in bodies:
            if _PLACEHOLDER_BODY.fullmatch(body):
                return False, f"placeholder body {_shorten(body)!r}"
            if self.drop_lone_question and _LONE_QUESTION.fullmatch(body):
                return False, f"lone question {_shorten(body)!r}"
        return True


# An ellipsis is "\u2026" or exactly three dots; longer runs are dot leaders in tables
# ("M-1.......736.7"), not the truncation marks the Gopher rules target.
_ELLIPSIS = re.compile(r"(?<!\.)\.\.\.(?!\.)|\u2026")


def _count_ellipses(text: str) -> int:
    if "..." not in text and "\u2026" not in text:
        return 0  # the usual case, decided by two C scans instead of a regex pass
    return len(_ELLIPSIS.findall(text))


def _ends_with_ellipsis(line: str) -> bool:
    return line.endswith("\u2026") or (line.endswith("...") and not line.endswith("...."))


# Bullet glyphs, or a dash followed by a space (so "-1.5" is not a bullet).
_BULLET_LINE = re.compile(
    r"[\u2022\u2023\u25aa\u25ab\u25e6\u25cf\u25cb\u25a0\u25a1\u25b6\u25ba\u00b7\u2219*]"
    r"|[-\u2013\u2014](?=\s)"
)
_HAS_ALPHA_WORD = re.compile(r"\S*?[^\W\d_]\S*")


def _count_alpha_words(text: str, words: Sequence[str]) -> int:
    """Words containing at least one alphabetic character."""
    if text.isascii():
        # Every ASCII letter is cased, so a word has one exactly when case mapping
        # changes it: C-level maps instead of a regex pass (uncased scripts need it).
        return sum(map(ne, map(str.upper, words), map(str.lower, words)))
    return len(_HAS_ALPHA_WORD.findall(text))


_STOP_WORD = re.compile(r"\b(?:the|be|to|of|and|that|have|with)\b", re.IGNORECASE)


class GopherQualityFilter(Filter):
    """Gopher quality rules (Rae et al. 2021, "Scaling Language Models: Methods, Analysis
    & Insights from Training Gopher", App. A.1.1, MassiveText quality filter).

    Drop a document that has fewer than ``min_doc_words=50`` or more than
    ``max_doc_words=100_000`` words; a mean word length outside
    ``[min_avg_word_length=3, max_avg_word_length=10]``; a hash-to-word or
    ellipsis-to-word ratio above ``max_symbol_word_ratio=0.1``; more than
    ``max_bullet_lines_ratio=0.9`` of lines starting with a bullet; more than
    ``max_ellipsis_lines_ratio=0.3`` of lines ending with an ellipsis; fewer than
    ``min_alpha_words_ratio=0.8`` of words containing an alphabetic character; fewer than
    ``min_stop_words=2`` occurrences of the stop words *the, be, to, of, and, that, have,
    with* (case-insensitive, as whole words). Set a bound to ``None`` to switch that
    rule off.

    Definitions the paper leaves open: an ellipsis is "\u2026" or exactly three dots
    (longer dot runs are table leaders); a bullet is a bullet glyph or a dash followed by
    a space at the start of a line. Rules are checked in the order above and the first
    failure is reported.
    """

    name = "gopher_quality"

    def __init__(
        self,
        min_doc_words: int | None = 50,
        max_doc_words: int | None = 100_000,
        min_avg_word_length: float | None = 3,
        max_avg_word_length: float | None = 10,
        max_symbol_word_ratio: float | None = 0.1,
        max_bullet_lines_ratio: float | None = 0.9,
        max_ellipsis_lines_ratio: float | None = 0.3,
        min_alpha_words_ratio: float | None = 0.8,
        min_stop_words: int | None = 2,
    ):
        self.min_doc_words = min_doc_words
        self.max_doc_words = max_doc_words
        self.min_avg_word_length = min_avg_word_length
        self.max_avg_word_length = max_avg_word_length
        self.max_symbol_word_ratio = max_symbol_word_ratio
        self.max_bullet_lines_ratio = max_bullet_lines_ratio
        self.max_ellipsis_lines_ratio = max_ellipsis_lines_ratio
        self.min_alpha_words_ratio = min_alpha_words_ratio
        self.min_stop_words = min_stop_words

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc["text"]
        words = split_words(text)
        n = len(words)
        if self.min_doc_words is not None and n < self.min_doc_words:
            return False, f"word count {n} < {self.min_doc_words}"
        if self.max_doc_words is not None and n > self.max_doc_words:
            return False, f"word count {n} > {self.max_doc_words}"
        if n == 0:
            return True

        mean_len = sum(map(len, words)) / n
        if self.min_avg_word_length is not None and mean_len < self.min_avg_word_length:
            return False, f"mean word length {_fmt(mean_len)} < {self.min_avg_word_length}"
        if self.max_avg_word_length is not None and mean_len > self.max_avg_word_length:
            return False, f"mean word length {_fmt(mean_len)} > {self.max_avg_word_length}"

        if self.max_symbol_word_ratio is not None:
            hash_ratio = text.count("#") / n
            if hash_ratio > self.max_symbol_word_ratio:
                return False, f"hash-to-word ratio {_fmt(hash_ratio)} > {self.max_symbol_word_ratio}"
            ellipsis_ratio = _count_ellipses(text) / n
            if ellipsis_ratio > self.max_symbol_word_ratio:
                return False, f"ellipsis-to-word ratio {_fmt(ellipsis_ratio)} > {self.max_symbol_word_ratio}"

        if self.max_bullet_lines_ratio is not None or self.max_ellipsis_lines_ratio is not None:
            lines = split_lines(text)
            n_lines = len(lines)
            if self.max_bullet_lines_ratio is not None:
                bullet = sum(1 for line in lines if _BULLET_LINE.match(line)) / n_lines
                if bullet > self.max_bullet_lines_ratio:
                    return False, f"bullet-line ratio {_fmt(bullet)} > {self.max_bullet_lines_ratio}"
            if self.max_ellipsis_lines_ratio is not None:
                ell = sum(map(_ends_with_ellipsis, lines)) / n_lines
                if ell > self.max_ellipsis_lines_ratio:
                    return False, f"ellipsis-line ratio {_fmt(ell)} > {self.max_ellipsis_lines_ratio}"

        if self.min_alpha_words_ratio is not None:
            alpha = _count_alpha_words(text, words) / n
            if alpha < self.min_alpha_words_ratio:
                return False, f"alphabetic-word ratio {_fmt(alpha)} < {self.min_alpha_words_ratio}"

        if self.min_stop_words is not None:
            found = 0
            for _ in _STOP_WORD.finditer(text):
                found += 1
                if found >= self.min_stop_words:
                    break
            else:
                return False, f"stop words {found} < {self.min_stop_words}"
        return True


_GOPHER_TOP_NGRAM = MappingProxyType({2: 0.20, 3: 0.18, 4: 0.16})
_GOPHER_DUP_NGRAM = MappingProxyType({5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10})


class GopherRepetitionFilter(Filter):
    """Gopher repetition rules (Rae et al. 2021, App. A.1.1, Table A1).

    Drop a document when any of these exceed their threshold:

    * duplicate line fraction ``dup_line_frac=0.30`` and duplicate paragraph fraction
      ``dup_para_frac=0.30`` (share of lines/paragraphs that are copies);
    * duplicate line / paragraph character fractions ``dup_line_char_frac=0.20`` and
      ``dup_para_char_frac=0.20``;
    * top n-gram character fraction ``top_ngram_char_frac={2: 0.20, 3: 0.18, 4: 0.16}``:
      characters covered by the most frequent n-gram, counting all its occurrences;
      an n-gram that occurs once is not repetition, so its fraction is 0 (otherwise a
      10-word text would fail on any 2-gram);
    * duplicate n-gram character fraction ``dup_ngram_char_frac={5: 0.15, 6: 0.14,
      7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}``: characters of the words covered by any
      repeated occurrence of an n-gram, each word counted once;
    * ``top_ngram_min_words=0``: apply the top n-gram rules only to documents of at
      least this many words. Not a paper number: Gopher applied Table A1 after its
      50-word minimum, and on shorter texts one disease name said twice is already 20 %
      of the characters. Profiles that admit short documents set it to 50.

    ``None`` switches a line/paragraph rule off; pass a smaller n-gram mapping (``{}``
    for none) to switch n-gram rules off.

    Speed: exact shortcuts settle most documents without counting n-grams: no repeated
    word means no repeated n-gram, and the top n-gram coverage is bounded by that of its
    parts (:func:`_coverage_bound`), which for prose already clears the thresholds.
    N-grams are word tuples counted by C-level ``Counter``/``dict`` building; for the
    duplicate rules only start positions whose shorter n-gram repeated are revisited,
    and since the coverage can only shrink as n grows the loop stops once it is under
    every remaining threshold.
    """

    name = "gopher_repetition"

    def __init__(
        self,
        dup_line_frac: float | None = 0.30,
        dup_para_frac: float | None = 0.30,
        dup_line_char_frac: float | None = 0.20,
        dup_para_char_frac: float | None = 0.20,
        top_ngram_char_frac: Mapping[int, float] = _GOPHER_TOP_NGRAM,
        dup_ngram_char_frac: Mapping[int, float] = _GOPHER_DUP_NGRAM,
        top_ngram_min_words: int = 0,
    ):
        self.dup_line_frac = dup_line_frac
        self.dup_para_frac = dup_para_frac
        self.dup_line_char_frac = dup_line_char_frac
        self.dup_para_char_frac = dup_para_char_frac
        # int() because config files may give the n-gram sizes as string keys.
        self.top_ngram_char_frac = dict(sorted((int(n), t) for n, t in top_ngram_char_frac.items()))
        self.dup_ngram_char_frac = dict(sorted((int(n), t) for n, t in dup_ngram_char_frac.items()))
        self.top_ngram_min_words = top_ngram_min_words

    def _segments(
        self, segments: Sequence[str], kind: str, max_frac: float | None, max_char_frac: float | None
    ) -> str | None:
        if not segments or (max_frac is None and max_char_frac is None):
            return None
        n_dup, dup_chars = _duplicates(segments)
        if max_frac is not None and n_dup / len(segments) > max_frac:
            return f"duplicate {kind} fraction {_fmt(n_dup / len(segments))} > {max_frac}"
        if max_char_frac is not None and dup_chars:
            frac = dup_chars / sum(map(len, segments))
            if frac > max_char_frac:
                return f"duplicate {kind} char fraction {_fmt(frac)} > {max_char_frac}"
        return None

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc["text"]
        fired = self._segments(
            split_lines(text), "line", self.dup_line_frac, self.dup_line_char_frac
        ) or self._segments(
            split_paragraphs(text), "paragraph", self.dup_para_frac, self.dup_para_char_frac
        )
        if fired is None:
            fired = self._ngrams(split_words(text))
        return True if fired is None else (False, fired)

    def _ngrams(self, words: Sequence[str]) -> str | None:
        n_words = len(words)
        unigrams = Counter(words)
        if len(unigrams) == n_words:
            return None  # no word repeats, so no n-gram can
        total = sum(map(len, words))
        weights = {1: max(map(mul, unigrams.values(), map(len, unigrams)))}
        top = self.top_ngram_char_frac if n_words >= self.top_ngram_min_words else {}
        for n, limit in top.items():
            if n > n_words:
                break
            if _coverage_bound(weights, n) <= limit * total:
                continue
            counts = Counter(zip(*(words[k:] for k in range(n))))
            best = max(counts.values())
            if best < 2:
                break  # no n-gram repeats, so no longer one can
            weights[n] = max(map(mul, counts.values(), map(len, map("".join, counts))))
            chars = max(len("".join(g)) for g, c in counts.items() if c == best)
            if best * chars > limit * total:
                return f"top {n}-gram char fraction {_fmt(best * chars / total)} > {limit}"

        cum = [0, *accumulate(map(len, words))]
        # Ascending start positions whose n-gram may occur twice: an n-gram can only
        # repeat where its (n-1)-gram prefix does, so the candidates shrink with n.
        starts: Sequence[int] = range(n_words)
        for n, limit in self.dup_ngram_char_frac.items():
            starts = starts[: bisect_left(starts, n_words - n + 1)]
            if isinstance(starts, range):  # still every position: build them in C
                grams = list(zip(*(words[k:] for k in range(n))))
            else:
                grams = [tuple(words[i : i + n]) for i in starts]
            if len(set(grams)) == len(grams):
                return None  # no n-gram repeats, so no longer one can
            first_seen = dict(zip(reversed(grams), reversed(starts)))
            firsts = list(map(first_seen.__getitem__, grams))
            repeats = list(compress(starts, map(ne, firsts, starts)))
            # Repeats are in increasing start order, so the covered words are a union of
            # intervals merged on the fly; each word is counted once.
            dup_chars = covered_to = 0
            for start in repeats:
                lo = max(start, covered_to)
                covered_to = start + n
                dup_chars += cum[covered_to] - cum[lo]
            if dup_chars > limit * total:
                return f"duplicate {n}-gram char fraction {_fmt(dup_chars / total)} > {limit}"
            if all(dup_chars <= t * total for m, t in self.dup_ngram_char_frac.items() if m > n):
                return None
            starts = sorted({*repeats, *compress(firsts, map(ne, firsts, starts))})
        return None


def _coverage_bound(weights: dict[int, int], n: int) -> float:
    """Upper bound on count(g) * chars(g) over the n-grams g of a text, given the exact
    maxima ``weights[m]`` for the sizes m already counted: an n-gram split into an m-gram
    and an (n-m)-gram occurs no more often than either part, so the bound is
    sub-additive."""
    bound = [0.0] * (n + 1)
    for m in range(1, n + 1):
        bound[m] = min([weights.get(m, inf), *(bound[a] + bound[m - a] for a in range(1, m))])
    return bound[n]


_C4_END_MARKS = (".", "?", "!", '"', "\u201d")
_C4_POLICY = re.compile(r"terms of use|privacy policy|cookie policy|uses cookies|use of cookies|use cookies")
_SENTENCE_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*(?=\s|$)")


class C4Filter(Filter):
    """C4 page rules (Raffel et al. 2020, JMLR 21(140), Sec. 2.2), as a doc-level verdict.

    C4 keeps only lines that end in terminal punctuation (period, exclamation mark,
    question mark, end quotation mark) and have at least ``min_words_per_line=5`` words,
    removes lines containing "javascript" or a policy phrase ("terms of use", "privacy
    policy", "cookie policy", "uses/use of/use cookies"), then discards the page if what
    is left has fewer than ``min_sentences=3`` sentences, or if the page contains
    "lorem ipsum" (``drop_lorem_ipsum``) or a curly bracket ``{`` (``drop_curly_bracket``,
    a code heuristic). The numbers are the paper's (3 sentences, 5 words; the TFDS C4
    code agrees; some re-implementations swap them to 5 and 3).

    Design choice: this filter never rewrites text. It evaluates the line rules only to
    decide whether C4 would keep the page at all (``min_sentences`` counted over the
    lines C4 would keep); removing individual javascript/cookie/policy lines is
    boilerplate removal, which runs before the filters. A ``Filter`` that dropped lines
    would hide a mutation inside a keep/drop step. ``min_sentences=None`` switches the
    line-based page rule off. The bad-words list rule is not implemented: it needs an
    external list and, in medicine, fires on anatomy.

    Sentences are counted with a cheap regex (terminal punctuation followed by
    whitespace or end of text), not a trained sentence splitter; abbreviations such as
    "U.S." over-count slightly.
    """

    name = "c4"

    def __init__(
        self,
        min_sentences: int | None = 3,
        min_words_per_line: int = 5,
        drop_lorem_ipsum: bool = True,
        drop_curly_bracket: bool = True,
    ):
        self.min_sentences = min_sentences
        self.min_words_per_line = min_words_per_line
        self.drop_lorem_ipsum = drop_lorem_ipsum
        self.drop_curly_bracket = drop_curly_bracket

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc["text"]
        lower = text.lower()
        if self.drop_lorem_ipsum and "lorem ipsum" in lower:
            return False, "contains 'lorem ipsum'"
        if self.drop_curly_bracket and "{" in text:
            return False, "contains '{'"
        if self.min_sentences is None:
            return True
        # Most texts have no javascript or policy phrase at all; only then look per line.
        screen = "javascript" in lower or _C4_POLICY.search(lower) is not None
        sentences = kept = 0
        for line in split_lines(text):
            # line.split() is split_words' definition, called directly so as not to evict
            # the document's words from its one-entry cache.
            if not line.endswith(_C4_END_MARKS) or len(line.split()) < self.min_words_per_line:
                continue
            if screen and ("javascript" in line.lower() or _C4_POLICY.search(line.lower())):
                continue
            kept += 1
            sentences += len(_SENTENCE_END.findall(line))
            if sentences >= self.min_sentences:
                return True
        return False, f"{sentences} sentences in {kept} C4-kept lines < {self.min_sentences}"


_FINEWEB_END_MARKS = (".", "?", "!", '"', "'", "\u201d", "\u2019")


class FineWebQualityFilter(Filter):
    """FineWeb custom quality rules (Penedo et al. 2024, "The FineWeb Datasets", Sec. 3.3).

    The three rules of the paper, with its inclusive bounds: drop a document when the
    fraction of lines ending in punctuation is at most ``min_line_punct_ratio=0.12``,
    when the fraction of lines shorter than ``short_line_chars=30`` characters is at
    least ``max_short_line_ratio=0.67``, or when the fraction of characters in duplicate
    lines is at least ``max_dup_line_char_ratio=0.1``. A fourth rule drops list-like text
    whose newline-to-word ratio is above ``max_newline_word_ratio=0.3``; that number is
    not in the paper but is the default of datatrove's ``FineWebQualityFilter``
    (HuggingFace's own FineWeb code). Set a bound to ``None`` to switch that rule off.
    """

    name = "fineweb_quality"

    def __init__(
        self,
        min_line_punct_ratio: float | None = 0.12,
        short_line_chars: int = 30,
        max_short_line_ratio: float | None = 0.67,
        max_dup_line_char_ratio: float | None = 0.1,
        max_newline_word_ratio: float | None = 0.3,
    ):
        self.min_line_punct_ratio = min_line_punct_ratio
        self.short_line_chars = short_line_chars
        self.max_short_line_ratio = max_short_line_ratio
        self.max_dup_line_char_ratio = max_dup_line_char_ratio
        self.max_newline_word_ratio = max_newline_word_ratio

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc["text"]
        lines = split_lines(text)
        if not lines:
            return True
        n_lines = len(lines)
        if self.min_line_punct_ratio is not None:
            ratio = sum(1 for line in lines if line.endswith(_FINEWEB_END_MARKS)) / n_lines
            if ratio <= self.min_line_punct_ratio:
                return False, f"line punctuation ratio {_fmt(ratio)} <= {self.min_line_punct_ratio}"
        if self.max_short_line_ratio is not None:
            short = self.short_line_chars
            ratio = sum(1 for line in lines if len(line) < short) / n_lines
            if ratio >= self.max_short_line_ratio:
                return False, f"short-line ratio {_fmt(ratio)} >= {self.max_short_line_ratio}"
        if self.max_dup_line_char_ratio is not None:
            _, dup_chars = _duplicates(lines)
            if dup_chars:
                ratio = dup_chars / sum(map(len, lines))
                if ratio >= self.max_dup_line_char_ratio:
                    limit = self.max_dup_line_char_ratio
                    return False, f"duplicate-line char ratio {_fmt(ratio)} >= {limit}"
        if self.max_newline_word_ratio is not None:
            n_words = len(split_words(text))
            ratio = text.count("\n") / n_words
            if ratio > self.max_newline_word_ratio:
                return False, f"newline-to-word ratio {_fmt(ratio)} > {self.max_newline_word_ratio}"
        return True
