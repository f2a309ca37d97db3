"""The document record and the two kinds of step that act on it.

A document is a plain ``dict`` so that it pickles cheaply between Beam stages:

=============  ==========================================================
key            meaning
=============  ==========================================================
``id``         stable identifier (from ``id_field``, else ``<source file>:<line>``)
``text``       the document text (str)
``domain``     domain name from the corpus config (``finance``, ``medical``...)
``source``     upstream source (the record's ``source`` field, else corpus name)
``corpus``     corpus name from the config
``title``      title, when the source has one (else ``None``)
``metadata``   pass-through fields, a JSON-serialisable dict
=============  ==========================================================

Later steps add ``pii`` (``{type: count}``), ``content_hash``, ``n_chars`` and
``n_words``; near dedup adds ``signature`` (the MinHash signature, for the dedup index).

Steps follow datatrove's shape: a :class:`Transform` returns the changed document, a
:class:`Filter` answers ``filter(doc) -> bool | (False, detail)``. A dropped document's
``reason`` is the filter's ``name`` (one stable key per rule family, e.g.
``gopher_quality``, used for stats and validation bounds) and its ``reason_detail`` is the
specific rule and measured value (``"mean word length 2.1 < 3"``). Counting and routing
of rejected documents is done once, by whoever drives the steps (the Beam job or the
benchmark loop), never inside a step.
"""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]


class Transform:
    """A step that rewrites a document (text or fields) and never drops it."""

    name: str = "transform"

    def __call__(self, doc: Doc) -> Doc:  # pragma: no cover - interface
        raise NotImplementedError


class Filter:
    """A step that keeps or drops a document.

    ``filter`` returns ``True`` to keep, ``False`` to drop, or ``(False, detail)`` to drop
    and say which rule fired and on what value.
    """

    name: str = "filter"

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:  # pragma: no cover - interface
        raise NotImplementedError

    def check(self, doc: Doc) -> tuple[str, str] | None:
        """Return ``(reason, detail)`` when the document is dropped, else ``None``."""
        verdict = self.filter(doc)
        if verdict is True:
            return None
        if verdict is False:
            return self.name, self.name
        keep, detail = verdict
        return None if keep else (self.name, detail)
