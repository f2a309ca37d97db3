"""Strip SGML/HTML/XML markup and decode entities, keeping paragraphs and the title.

What counts as markup is decided conservatively, because domain text is full of angle
brackets that are content: ``p<0.05``, ``<or = 5 mm`` in PubMed abstracts, and
Reuters' ticker notation ``&lt;SRD>`` (escaped, so it is text once decoded). A tag is
removed when it is a closing tag, a tag whose name is closed somewhere in the same
document, a known HTML/SGML element, a comment, a doctype or a processing instruction.
Entities are decoded after the tags are gone, so escaped brackets survive as text.

:data:`LEFTOVER_MARKUP` is the one definition of "markup left in clean text" that the
validation stage and the tests use.
"""

from __future__ import annotations

import html
import re

from pipelines.steps.base import Doc, Transform
from pipelines.steps.repair import normalize_whitespace, strip_control_chars

# HTML block elements (WHATWG HTML "flow content" that starts a new block) plus the
# SGML elements of Reuters-21578 (lewis.dtd); a boundary at these becomes a line break.
_BLOCK_ELEMENTS = frozenset(
    """address article aside blockquote br dd details dialog div dl dt fieldset
    figcaption figure footer form h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre
    section table tbody td tfoot th thead tr ul
    text title author reuters unknown""".split()
)
_INLINE_ELEMENTS = frozenset(
    """a abbr b bdi bdo cite code data dfn em font i img kbd mark q s samp small span
    strong sub sup time u var wbr html head meta link d topics places people orgs
    exchanges companies date mknote dateline body""".split()
)
_KNOWN_ELEMENTS = _BLOCK_ELEMENTS | _INLINE_ELEMENTS

_TAG = re.compile(r"<(/?)([A-Za-z][A-Za-z0-9:_-]*)((?:\s[^<>]*)?)/?>")
_CLOSING_NAME = re.compile(r"</([A-Za-z][A-Za-z0-9:_-]*)\s*>")
_DROPPED_BLOCKS = re.compile(
    r"<!--.*?-->|<!\[CDATA\[.*?\]\]>|<(script|style)\b[^>]*>.*?</\1\s*>|<![A-Za-z][^>]*>|<\?.*?\?>",
    re.IGNORECASE | re.DOTALL,
)
_TITLE = re.compile(r"<title\b[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)
_ENTITY = re.compile(r"&(#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")

_NAMES = "|".join(sorted(_KNOWN_ELEMENTS))
LEFTOVER_MARKUP = re.compile(
    r"</[A-Za-z][A-Za-z0-9:_-]*\s*>"
    r"|<(?i:" + _NAMES + r")\s[^<>]*=[^<>]*>"
    r"|<(?i:" + _NAMES + r")\s*/>"
    r"|<(?:" + _NAMES + r")>"
    r"|<!--|&(?:#\d{1,7}|#[xX][0-9A-Fa-f]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"
)
"""Markup that must not survive cleaning: closing tags, known elements with attributes,
self-closing or in lower case, comments, and character/named entities.

Not every ``<word>`` is markup: Reuters writes tickers as ``<I>``, ``<DD>`` or ``<BP>``,
the redactor writes ``<EMAIL>``, and abstracts write ``<or = 5``. So a bare upper-case
``<P>`` is read as text; the price of that is missing old upper-case HTML that was
never closed anywhere in its document (the stripper removes closed ones)."""


def has_markup(text: str) -> bool:
    return "<" in text or "&" in text


def strip_markup(text: str) -> tuple[str, str | None]:
    """Return ``(plain text, title or None)``."""
    if not has_markup(text):
        return text, None
    title = None
    match = _TITLE.search(text)
    if match:
        title = _decode(_TAG.sub(" ", match.group(1))).strip() or None
        text = text[: match.start()] + "\n" + text[match.end() :]
    text = _DROPPED_BLOCKS.sub("\n", text)
    closed = {name.lower() for name in _CLOSING_NAME.findall(text)}

    def replace(tag: re.Match) -> str:
        name = tag.group(2).lower()
        if not (tag.group(1) or name in closed or name in _KNOWN_ELEMENTS):
            return tag.group(0)
        # Inline elements join their text as a browser would: "<b>wid</b>ened" is one word.
        return "\n" if name in _BLOCK_ELEMENTS else ""

    text = _TAG.sub(replace, text)
    return _decode(text), title


def _decode(text: str) -> str:
    if "&" in text and _ENTITY.search(text):
        # Control characters from numeric entities (&#2; &#3; &#127;) are noise.
        text = strip_control_chars(html.unescape(text))
    return text


class StripMarkup(Transform):
    """Step 2: markup out, entities decoded, the title (if any) first, then a blank line.

    A title found in the markup wins over the record's ``title`` field, which for
    Reuters is itself escaped markup.
    """

    name = "markup"

    def __call__(self, doc: Doc) -> Doc:
        text, title = strip_markup(doc["text"])
        text = normalize_whitespace(text)
        if doc.get("title"):
            doc["title"] = normalize_whitespace(strip_markup(doc["title"])[0])
        if title:
            title = normalize_whitespace(title)
            doc["title"] = title
            text = f"{title}\n\n{text}" if text else title
        doc["text"] = text
        return doc
