"""Decode and repair text: bytes to clean, NFC-normalised Unicode.

Runs first, on every document. Decoding errors never reach this module: the reader
(:mod:`pipelines.read`) decodes strictly and sends undecodable records to quarantine.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy
from ftfy.badness import is_bad

from pipelines.steps.base import Doc, Transform

# C0 and C1 controls except tab and newline. SGML entities such as ``&#2;``/``&#3;``
# (Reuters' start/end-of-text marks) decode to these, and raw cp1252 bytes that were
# read as Latin-1 leave C1 controls behind when ftfy cannot map them back.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_C1 = re.compile(r"[\x80-\x9f]")
_HSPACE_RUN = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]{2,}")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_RUN = re.compile(r"\n{3,}")
_FTFY_CONFIG = ftfy.TextFixerConfig(
    # NFC is applied separately below; ftfy's default NFC pass would be a second scan.
    normalization=None,
    # Text-only fixes: we never want ftfy to guess HTML (the markup step owns that).
    unescape_html=False,
    # Curly quotes carry meaning in code and legal text; keep them as written.
    uncurl_quotes=False,
    explain=False,
)


def strip_control_chars(text: str) -> str:
    return _CONTROL.sub("", text)


def normalize_whitespace(text: str) -> str:
    """Collapse layout noise while keeping line and paragraph structure.

    Runs of horizontal space (scraped page indentation: MedQuAD has runs of 20+) become
    one space; lines lose leading/trailing space; more than one blank line becomes one.
    """
    text = _HSPACE_RUN.sub(" ", text)
    text = _TRAILING_SPACE.sub("\n", text)
    if "\n " in text:
        text = "\n".join(line.lstrip() for line in text.split("\n"))
    text = _BLANK_RUN.sub("\n\n", text)
    return text.strip()


def repair_text(text: str) -> str:
    """BOM, CRLF, mojibake/cp1252 leftovers, control characters, NFC, whitespace.

    NFC rather than NFKC: compatibility folding rewrites superscripts, fractions, the
    micro sign and ligatures ("10²" -> "102", "½" -> "1⁄2"), which corrupts numbers,
    units, math and chemistry in exactly the domains this pipeline serves.
    """
    text = text.replace("\ufeff", "")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        # ftfy runs at ~0.5 MB/s on long documents; its own badness heuristic plus a C1
        # check costs a tenth of that and is false for nearly all clean Unicode text.
        if _C1.search(text) or is_bad(text):
            text = ftfy.fix_text(text, _FTFY_CONFIG)
        text = unicodedata.normalize("NFC", text)
    text = strip_control_chars(text)
    return normalize_whitespace(text)


class Repair(Transform):
    """Step 1: text repair (see :func:`repair_text`); the title gets the same repair."""

    name = "repair"

    def __call__(self, doc: Doc) -> Doc:
        doc["text"] = repair_text(doc["text"])
        if doc.get("title"):
            doc["title"] = repair_text(doc["title"])
        return doc
