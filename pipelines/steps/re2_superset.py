"""An RE2 pattern that matches wherever a Python regex matches, in ASCII text.

Arrow's ``pyarrow.compute.match_substring_regex`` runs RE2 over a whole string column
in C++, tens of times faster than calling Python's ``re`` once per row; but RE2 has no
lookarounds or backreferences, and its ``\\w``, ``\\s`` and case folding are not
Python's. :func:`superset` rewrites a compiled Python pattern into RE2 syntax that may
match more, never less, so :func:`may_match` can split a column in one pass into rows the Python
pattern certainly does not match and rows worth a Python look:

* lookarounds and anchors (``(?<!\\w)``, ``\\b``, ``^``) are dropped: they only ever
  remove matches;
* a backreference becomes a copy of the group it refers to;
* every single-character item (a literal, ``.``, a class with ``\\d``/``\\s``/``\\w``,
  negated or not, case-insensitive or not) becomes the explicit set of ASCII characters
  that Python's own engine matches with it, under the flags in effect there.

The last point makes the translation exact per character only for ASCII characters, so
it proves nothing about a text that has any other: :func:`may_match` counts every
non-ASCII text as a possible match.

The parse tree comes from ``re._parser``, CPython's own regex parser (the only parser of
Python's syntax there is); an item this module does not know raises, so a new kind of
construct in a pattern fails the tests instead of silently losing matches.
"""

from __future__ import annotations

import functools
import re
import re._constants as c
import re._parser as sre_parse

_CATEGORY = {
    c.CATEGORY_DIGIT: r"\d", c.CATEGORY_NOT_DIGIT: r"\D",
    c.CATEGORY_SPACE: r"\s", c.CATEGORY_NOT_SPACE: r"\S",
    c.CATEGORY_WORD: r"\w", c.CATEGORY_NOT_WORD: r"\W",
}
_CHAR_FLAGS = re.IGNORECASE | re.ASCII | re.DOTALL | re.UNICODE
_ASCII = [chr(i) for i in range(128)]
#: RE2's counted repetition stops at 1000.
_RE2_MAX_COUNT = 1000
_NOTHING = r"[^\x00-\x{10FFFF}]"


def superset(*patterns: re.Pattern[str]) -> str:
    """RE2 syntax for a pattern that matches, in any ASCII text, at least where one of
    ``patterns`` does (its ``search`` finds something, or its ``match``/``finditer`` with
    any ``pos``/``endpos`` does). With no pattern: one that matches nothing."""
    return "|".join(f"(?:{_superset(p)})" for p in patterns) or _NOTHING


def may_match(texts, superset_pattern: str):
    """Per text of an Arrow string array: False where the Python patterns that
    ``superset_pattern`` (from :func:`superset`) stands for certainly do not match, True
    where they may: RE2 found a match, or the text is not ASCII. Null texts are False."""
    import pyarrow.compute as pc  # pyarrow only for callers that use Arrow

    candidates = pc.or_(pc.invert(pc.string_is_ascii(texts)), pc.match_substring_regex(texts, superset_pattern))
    return pc.fill_null(candidates, False)


def _superset(pattern: re.Pattern[str]) -> str:
    tree = sre_parse.parse(pattern.pattern, pattern.flags)
    flags = tree.state.flags
    items, parts = list(tree), []
    while items is not None and (split := _split_lookahead(items, flags)) is not None:
        prefix, items = split
        parts.append(prefix)
    if items is not None:
        parts.append(_head_context(items, flags) + _Translator().sequence(items, flags, tail=True))
    return "|".join(f"(?:{part})" for part in parts) or _NOTHING


def _split_lookahead(items: list, flags: int):
    """An alternative that is only a lookahead (``(?:number|(?=\\s*:))``) matches where
    the lookahead does, and whatever follows must then start there: so every match that
    takes it contains the text before it plus what the lookahead looks at, and every
    other match is one of the pattern without that alternative. Returns that prefix
    (RE2) and the pattern without the alternative (``None`` when nothing is left), or
    ``None`` when there is no such alternative outside a repetition."""
    for i, (op, av) in enumerate(items):
        found = None
        if op is c.BRANCH:
            for j, alt in enumerate(av[1]):
                alt = list(alt)
                if len(alt) == 1 and alt[0][0] is c.ASSERT and alt[0][1][0] == 1:
                    rest = av[1][:j] + av[1][j + 1 :]
                    inner = _Translator().sequence(alt[0][1][1], flags, tail=True)
                    found = (inner, (c.BRANCH, (None, rest)) if rest else None)
                elif (inner := _split_lookahead(alt, flags)) is not None:
                    rest = av[1][:j] + ([inner[1]] if inner[1] is not None else []) + av[1][j + 1 :]
                    found = (inner[0], (c.BRANCH, (None, rest)) if rest else None)
                if found:
                    break
        elif op is c.SUBPATTERN:
            group, add, remove, sub = av
            inner = _split_lookahead(list(sub), (flags | add) & ~remove)
            if inner is not None:
                found = (inner[0], (c.SUBPATTERN, (group, add, remove, inner[1])) if inner[1] is not None else None)
        if found:
            prefix = _Translator().sequence(items[:i], flags) + found[0]
            return prefix, (items[:i] + [found[1]] + items[i + 1 :]) if found[1] is not None else None
    return None


_ZERO_WIDTH = (c.AT, c.ASSERT, c.ASSERT_NOT)
_ONE_CHAR = (c.LITERAL, c.NOT_LITERAL, c.ANY, c.IN)


class _Translator:
    """Parse tree to RE2. ``tail``: nothing that consumes text follows, in the whole
    pattern, so a lookahead there can be consumed instead (what it looks at is then
    part of the match, which only the existence of a match is asked about)."""

    def __init__(self):
        self.groups: dict[int, tuple] = {}  # group id -> (subpattern, flags)

    def sequence(self, items, flags: int, tail: bool = False) -> str:
        items = list(items)
        consuming = [i for i, (op, _) in enumerate(items) if op not in _ZERO_WIDTH]
        last = consuming[-1] if consuming else -1
        out = []
        for i, (op, av) in enumerate(items):
            if i > last and tail and op is c.ASSERT and av[0] == 1:
                # Everything after it is zero-width and would be checked where the
                # lookahead starts: drop it, as other lookarounds are.
                out.append("(?:" + self.sequence(av[1], flags, tail=True) + ")")
                break
            out.append(self.item(op, av, flags, tail and i >= last))
        return "".join(out)

    def item(self, op, av, flags: int, tail: bool) -> str:
        if op in _ONE_CHAR:
            return _char_set(op, av, flags)
        if op is c.AT:
            # On ASCII text Python's word boundary is RE2's; the rest only constrain.
            return {c.AT_BOUNDARY: r"\b", c.AT_NON_BOUNDARY: r"\B"}.get(av, "")
        if op in (c.ASSERT, c.ASSERT_NOT):
            return ""
        if op is c.BRANCH:
            return "(?:" + "|".join(self.sequence(alt, flags, tail) for alt in av[1]) + ")"
        if op is c.SUBPATTERN:
            group, add, remove, items = av
            inner = (flags | add) & ~remove
            if group is not None:
                self.groups[group] = (items, inner)
            return "(?:" + self.sequence(items, inner, tail) + ")"
        if op is c.ATOMIC_GROUP:
            return "(?:" + self.sequence(av, flags, tail) + ")"
        if op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            low, high, items = av
            if low > _RE2_MAX_COUNT:
                raise ValueError(f"repetition of at least {low} has no RE2 equivalent")
            bound = "" if high is c.MAXREPEAT or high > _RE2_MAX_COUNT else str(high)
            return "(?:" + self.sequence(items, flags) + "){" + f"{low},{bound}" + "}"
        if op is c.GROUPREF:
            items, group_flags = self.groups[av]
            # Same text as the group, in any case where the reference ignores case.
            return "(?:" + self.sequence(items, group_flags | (flags & re.IGNORECASE)) + ")"
        if op is c.GROUPREF_EXISTS:
            _, yes, no = av
            return "(?:" + self.sequence(yes, flags) + "|" + (self.sequence(no, flags) if no else "") + ")"
        raise ValueError(f"no RE2 superset for regex item {op}")


def _head_context(tree, flags: int) -> str:
    """What a negative lookbehind near the start of the pattern says about the character
    before the match (``(?<![\\w.])9\\d``, or ``\\d(?<![\\w.].)`` one character in), as
    RE2 that consumes that character: ``(?:^|[^\\w.])``. Empty when there is none."""
    consumed: list[frozenset[str]] = []

    def walk(items, flags: int) -> str | None:
        for op, av in items:
            if op is c.SUBPATTERN:
                found = walk(av[3], (flags | av[1]) & ~av[2])
                if found is not None:
                    return found
            elif op in _ONE_CHAR:
                consumed.append(_ascii_set(_python_char(op, av), flags & _CHAR_FLAGS))
            elif op is c.ASSERT_NOT and av[0] == -1:
                return _before_match(av[1], flags, consumed)
            elif op not in _ZERO_WIDTH:
                return ""
        return None

    return walk(tree, flags) or ""


def _before_match(behind, flags: int, consumed: list[frozenset[str]]) -> str:
    """``(?:^|[^S])`` for a lookbehind ``(?<!S C1..Cj)`` placed after j consumed
    characters that each ``Ci`` accepts; empty for any other lookbehind."""
    behind = list(behind)
    if len(behind) != len(consumed) + 1 or any(op not in _ONE_CHAR for op, _ in behind):
        return ""
    sets = [_ascii_set(_python_char(op, av), flags & _CHAR_FLAGS) for op, av in behind]
    if not all(seen <= accepts for seen, accepts in zip(consumed, sets[1:])):
        return ""
    return "(?:^|[^" + "".join(_re2_char(ch) for ch in sorted(sets[0])) + "])"


def _char_set(op, av, flags: int) -> str:
    """The ASCII characters one single-character item matches, as an RE2 class."""
    chars = sorted(_ascii_set(_python_char(op, av), flags & _CHAR_FLAGS))
    if not chars:
        return _NOTHING
    if len(chars) == 1:
        return _re2_char(chars[0])
    return "[" + "".join(_re2_char(ch) for ch in chars) + "]"


@functools.lru_cache(maxsize=None)
def _ascii_set(python_char: str, flags: int) -> frozenset[str]:
    """The ASCII characters a one-character Python pattern matches, as Python decides."""
    rx = re.compile(python_char, flags)
    return frozenset(ch for ch in _ASCII if rx.fullmatch(ch))


def _python_char(op, av) -> str:
    if op is c.LITERAL:
        return _py_char(av)
    if op is c.NOT_LITERAL:
        return "[^" + _py_char(av) + "]"
    if op is c.ANY:
        return "."
    parts = []
    for item_op, item_av in av:
        if item_op is c.NEGATE:
            parts.insert(0, "^")
        elif item_op is c.LITERAL:
            parts.append(_py_char(item_av))
        elif item_op is c.RANGE:
            parts.append(_py_char(item_av[0]) + "-" + _py_char(item_av[1]))
        elif item_op is c.CATEGORY:
            parts.append(_CATEGORY[item_av])
        else:
            raise ValueError(f"no RE2 superset for character class item {item_op}")
    return "[" + "".join(parts) + "]"


def _py_char(code: int) -> str:
    return f"\\U{code:08x}"


def _re2_char(ch: str) -> str:
    return ch if ch.isalnum() else f"\\x{{{ord(ch):x}}}"
