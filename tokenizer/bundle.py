"""The frozen tokenizer bundle, and :func:`load_tokenizer`, the only way dapt code loads a
tokenizer.

Layout (a folder, written once, never overwritten)::

    BUNDLE/tokenizer.model   the SentencePiece model (serialized ModelProto)
    BUNDLE/manifest.json     what it is and how it was made

``manifest.json`` keys: ``format`` (``dapt-tokenizer/1``), ``sha256`` and ``model_bytes``
of ``tokenizer.model``, ``vocab_size``, ``model_type``, ``special_ids``
(``{unk, bos, eos, pad}``), ``user_defined_symbols``, ``dtype`` (token array type for this
vocabulary: ``uint16`` up to 65,536 ids, else ``uint32``), ``trainer_options`` (every
option given to SentencePiece), ``config`` (the full ``TokenizerConfig``), ``sample``
(``sentences``, ``bytes``, ``documents``, ``sha256`` of the sample, ``by_domain``),
``corpora`` (each input with its Parquet files' sha256 and a digest over them),
``seconds``, ``dapt_version``, ``sentencepiece_version``, ``created`` (UTC).

:func:`load_tokenizer` recomputes the model's sha256 and refuses a bundle whose model
was modified or swapped; it then loads SentencePiece from the very bytes it checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

import numpy as np

FORMAT = "dapt-tokenizer/1"
MODEL_FILE = "tokenizer.model"
MANIFEST_FILE = "manifest.json"
#: Largest vocabulary whose ids fit a uint16 token array.
UINT16_VOCAB = 1 << 16

Opener = Callable[[str], IO[bytes]]


def _open_local(path: str) -> IO[bytes]:
    return open(path, "rb")


class BundleError(ValueError):
    """A bundle that is missing, incomplete, modified or in the way; the message says which."""


def token_dtype(vocab_size: int) -> str:
    return "uint16" if vocab_size <= UINT16_VOCAB else "uint32"


def ensure_new(path: str) -> None:
    """Refuse to write a bundle where anything already is (an empty folder is fine)."""
    if os.path.isdir(path) and not os.listdir(path):
        return
    if os.path.lexists(path):
        raise BundleError(
            f"{path} already exists; a tokenizer bundle is never overwritten: train into a new folder "
            f"(e.g. {path.rstrip('/')}-v2)"
        )


def _processor(model: bytes, where: str):
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(model)
    except (RuntimeError, OSError) as err:
        raise BundleError(f"{where}: not a loadable SentencePiece model: {err}") from None
    return processor


def freeze(model: bytes, info: dict, path: str) -> dict:
    """Write ``model`` and its manifest (``info`` plus the checked facts) as the new bundle
    ``path``; staged in a sibling folder and renamed into place, so a bundle is complete or
    absent. Returns the manifest."""
    import importlib.metadata

    import sentencepiece as spm

    ensure_new(path)
    processor = _processor(model, "trained model")
    vocab_size = processor.get_piece_size()
    manifest = {
        "format": FORMAT,
        "sha256": hashlib.sha256(model).hexdigest(),
        "model_bytes": len(model),
        "vocab_size": vocab_size,
        "special_ids": {
            "unk": processor.unk_id(), "bos": processor.bos_id(), "eos": processor.eos_id(), "pad": processor.pad_id(),
        },
        "user_defined_symbols": info.get("trainer_options", {}).get("user_defined_symbols", []),
        "dtype": token_dtype(vocab_size),
        **info,
        "dapt_version": importlib.metadata.version("dapt"),
        "sentencepiece_version": spm.__version__,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    parent = os.path.dirname(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(os.path.abspath(path))}.partial-", dir=parent)
    try:
        with open(os.path.join(staging, MODEL_FILE), "wb") as f:
            f.write(model)
        with open(os.path.join(staging, MANIFEST_FILE), "w", encoding="utf-8") as f:
            f.write(json.dumps(manifest, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        ensure_new(path)
        if os.path.isdir(path):
            os.rmdir(path)
        os.rename(staging, path)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _join(bundle: str, name: str) -> str:
    return bundle.rstrip("/") + "/" + name


def _read(opener: Opener, path: str, bundle: str) -> bytes:
    try:
        with opener(path) as f:
            return f.read()
    except FileNotFoundError:
        raise BundleError(f"{bundle}: not a tokenizer bundle: {os.path.basename(path)} is missing") from None
    except OSError as err:
        raise BundleError(f"{bundle}: cannot read {os.path.basename(path)}: {err}") from None


def read_manifest(bundle: str, opener: Opener = _open_local) -> dict:
    raw = _read(opener, _join(bundle, MANIFEST_FILE), bundle)
    try:
        manifest = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BundleError(f"{bundle}: {MANIFEST_FILE} is not valid JSON: {err}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BundleError(f"{bundle}: {MANIFEST_FILE} is not a {FORMAT} manifest")
    for key in ("sha256", "vocab_size", "special_ids", "dtype"):
        if key not in manifest:
            raise BundleError(f"{bundle}: {MANIFEST_FILE} lacks {key!r}")
    return manifest


@dataclass(frozen=True)
class Tokenizer:
    """A verified bundle: its manifest and the SentencePiece processor of its exact bytes."""

    path: str
    manifest: dict
    processor: object

    @property
    def sha256(self) -> str:
        return self.manifest["sha256"]

    @property
    def vocab_size(self) -> int:
        return self.manifest["vocab_size"]

    @property
    def eos_id(self) -> int:
        return self.manifest["special_ids"]["eos"]

    @property
    def unk_id(self) -> int:
        return self.manifest["special_ids"]["unk"]

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.manifest["dtype"])

    def thread_pool(self, num_threads: int = 0):
        """A SentencePiece thread pool to reuse across :meth:`encode` calls (0 = all cores)."""
        import sentencepiece as spm

        return spm.ThreadPool(num_threads or os.cpu_count() or 1)

    def encode(self, texts: list[str], thread_pool=None, add_eos: bool = False) -> list[np.ndarray]:
        """Token ids of each text (int32 arrays, no BOS; EOS last when ``add_eos``), encoded
        in parallel. SentencePiece appends the EOS in C++, cheaper than a copy in numpy."""
        return self.processor.encode(texts, return_type="numpy", thread_pool=thread_pool, add_eos=add_eos)

    def decode(self, ids) -> str:
        return self.processor.decode([int(i) for i in ids])

    def byte_piece_mask(self) -> np.ndarray:
        """``mask[id]`` is True for the 256 byte-fallback pieces."""
        return np.array([self.processor.is_byte(i) for i in range(self.vocab_size)], dtype=bool)


def load_tokenizer(bundle: str, opener: Opener = _open_local) -> Tokenizer:
    """Load a bundle after checking that ``tokenizer.model`` is the model its manifest
    describes. ``opener`` opens a path for binary reading (the Beam job passes
    ``FileSystems.open`` to read bundles on object stores)."""
    manifest = read_manifest(bundle, opener)
    model = _read(opener, _join(bundle, MODEL_FILE), bundle)
    digest = hashlib.sha256(model).hexdigest()
    if digest != manifest["sha256"]:
        raise BundleError(
            f"{bundle}: {MODEL_FILE} has sha256 {digest[:16]}..., the manifest says {manifest['sha256'][:16]}...: "
            "the model was modified or swapped; restore it or train a new bundle"
        )
    processor = _processor(model, _join(bundle, MODEL_FILE))
    if processor.get_piece_size() != manifest["vocab_size"]:
        raise BundleError(
            f"{bundle}: the model has {processor.get_piece_size()} pieces, the manifest says {manifest['vocab_size']}"
        )
    return Tokenizer(path=bundle, manifest=manifest, processor=processor)


def verify_bundle(bundle: str) -> dict:
    """The manifest of a bundle that passes :func:`load_tokenizer`'s checks."""
    return load_tokenizer(bundle).manifest
