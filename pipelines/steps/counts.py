"""Per-document counts: characters and words, and tokens once a tokenizer exists."""

from __future__ import annotations

from collections.abc import Callable

from pipelines.steps.base import Doc, Transform


class CountDocument(Transform):
    """Step 8: ``n_chars`` (Unicode code points) and ``n_words`` (whitespace-separated).

    ``count_tokens`` is the hook for the frozen domain tokenizer: given a callable that
    returns the number of tokens of a text, the step also sets ``n_tokens``.
    """

    name = "counts"

    def __init__(self, count_tokens: Callable[[str], int] | None = None):
        self.count_tokens = count_tokens

    def __call__(self, doc: Doc) -> Doc:
        text = doc["text"]
        doc["n_chars"] = len(text)
        doc["n_words"] = len(text.split())
        if self.count_tokens is not None:
            doc["n_tokens"] = self.count_tokens(text)
        return doc
