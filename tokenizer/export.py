"""``dapt tokenizer export BUNDLE --format hf --output DIR``: the bundle in Hugging Face
``tokenizers`` / ``transformers`` format.

Writes ``DIR/tokenizer.json`` (loadable with ``tokenizers.Tokenizer.from_file`` and by
``transformers.PreTrainedTokenizerFast``), ``DIR/tokenizer_config.json``,
``DIR/special_tokens_map.json`` and ``DIR/dapt_bundle.json`` (the source bundle's path and
sha256, so an export can be traced to its frozen bundle).

The model's pieces, scores and types are read through ``SentencePieceProcessor``
(``id_to_piece``, ``get_score``, ``is_control``, ``is_byte``...), not by parsing the model
proto: ``sentencepiece_model_pb2`` does not import under protobuf 6 (``STACK.md``). The
JSON is written directly, so ``tokenizers`` stays a test-only dependency; the test loads
the export with it and checks that it gives SentencePiece's ids on the shared samples.

How SentencePiece's behaviour maps onto the ``tokenizers`` pipeline (the layout
``transformers`` uses for LLaMA since ``legacy=False``):

* the user-defined symbols (newline, ``<EMAIL>``...) are added tokens matched in the raw
  text, as SentencePiece matches them before anything else;
* normalizer ``Replace(" ", "▁")``; the dummy prefix is a ``Metaspace`` pre-tokenizer with
  ``prepend_scheme="first"``, so it is added once, before the first piece of text, and not
  again after each added token;
* model ``Unigram`` with the piece scores, or ``BPE`` with merges rebuilt from the piece
  ranks (a piece of rank r is the merge of two shorter pieces; merges are ordered by the
  merged piece's rank, the order in which SentencePiece applies them), with byte fallback;
* ``<unk>``, ``<s>``, ``</s>``, ``<pad>`` are special added tokens. SentencePiece never
  produces them from text: in the Unigram vocabulary they get a score no path through
  them can win with, and ``tokenizers`` only matches their literal strings in text when
  ``encode_special_tokens`` is off (its default; ``split_special_tokens`` in
  ``transformers``), so turn it on when text may contain them literally;
* decoder: ``▁`` back to spaces, byte pieces to bytes, the dummy prefix stripped.

Where the two differ: ``Metaspace`` adds no dummy prefix to a text that starts with a
space or with a user-defined symbol (a newline, a placeholder), where SentencePiece emits
a lone ``▁`` first; no kept document starts so (the corpus stage trims documents), and the
test checks every document of both samples for identical ids.

Only ``normalization_rule_name=identity`` with ``remove_extra_whitespaces=False`` (the
defaults) is exported: the NFKC rules live in a precompiled character map inside the
model proto, which the processor API does not expose.
"""

from __future__ import annotations

import json
import os

from tokenizer.bundle import Tokenizer

SPACE = "▁"


class ExportError(ValueError):
    """A bundle this exporter cannot reproduce exactly."""


def _pieces(tokenizer: Tokenizer) -> list[tuple[str, float, str]]:
    """``(piece, score, kind)`` for every id; kind is control, unknown, byte, user or normal."""
    sp = tokenizer.processor
    user = set(tokenizer.manifest.get("user_defined_symbols", []))
    pieces = []
    for i in range(sp.get_piece_size()):
        piece = sp.id_to_piece(i)
        if sp.is_unknown(i):
            kind = "unknown"
        elif sp.is_control(i):
            kind = "control"
        elif sp.is_byte(i):
            kind = "byte"
        elif piece in user:
            kind = "user"
        else:
            kind = "normal"
        pieces.append((piece, sp.get_score(i), kind))
    return pieces


def _check_exportable(options: dict) -> None:
    rule = options.get("normalization_rule_name", "nmt_nfkc")
    if rule != "identity":
        raise ExportError(
            f"normalization_rule_name={rule}: its character map is not readable through the SentencePiece API; "
            "only identity bundles (the default) export exactly"
        )
    if options.get("remove_extra_whitespaces", True):
        raise ExportError("remove_extra_whitespaces=True is not exported; only the default False exports exactly")


#: Score of control pieces in the exported Unigram vocabulary: far below any path of real
#: pieces, so a literal "</s>" in text is spelled out as SentencePiece does.
NEVER = -1e9


def _added_token(i: int, content: str, special: bool) -> dict:
    return {
        "id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
        "normalized": False, "special": special,
    }


def _bpe_merges(pieces: list[tuple[str, float, str]]) -> list[list[str]]:
    rank = {p: i for i, (p, _, kind) in enumerate(pieces) if kind == "normal"}
    merges = []
    for piece, i in rank.items():
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in rank and right in rank:
                merges.append((i, rank[left], rank[right], left, right))
    merges.sort()
    return [[left, right] for *_, left, right in merges]


def hf_tokenizer_json(tokenizer: Tokenizer) -> dict:
    """The ``tokenizer.json`` document for ``tokenizer``."""
    options = tokenizer.manifest.get("trainer_options", {})
    _check_exportable(options)
    pieces = _pieces(tokenizer)
    specials = {i for i, (_, _, kind) in enumerate(pieces) if kind in ("control", "unknown")}
    added = [
        _added_token(i, piece, i in specials)
        for i, (piece, _, kind) in enumerate(pieces) if i in specials or kind == "user"
    ]
    unk = tokenizer.unk_id
    if options.get("model_type", tokenizer.manifest.get("model_type")) == "bpe":
        model = {
            "type": "BPE", "dropout": None, "unk_token": pieces[unk][0], "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {p: i for i, (p, _, _) in enumerate(pieces)}, "merges": _bpe_merges(pieces),
        }
    else:
        vocab = [[p, NEVER if kind == "control" else s] for p, s, kind in pieces]
        model = {"type": "Unigram", "unk_id": unk, "vocab": vocab, "byte_fallback": True}
    dummy_prefix = options.get("add_dummy_prefix", True)
    decoders = [
        {"type": "Replace", "pattern": {"String": SPACE}, "content": " "},
        {"type": "ByteFallback"},
        {"type": "Fuse"},
    ]
    if dummy_prefix:
        decoders.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added,
        "normalizer": {"type": "Replace", "pattern": {"String": " "}, "content": SPACE},
        "pre_tokenizer": {
            "type": "Metaspace", "replacement": SPACE, "prepend_scheme": "first" if dummy_prefix else "never",
            "split": False,
        },
        "post_processor": None,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": model,
    }


def export_hf(tokenizer: Tokenizer, output: str) -> list[str]:
    """Write the Hugging Face files for ``tokenizer`` into ``output``; returns their paths.
    Refuses a non-empty ``output`` so an export never mixes two bundles."""
    if os.path.isdir(output) and os.listdir(output):
        raise ExportError(f"{output} is not empty; export into a new folder")
    document = hf_tokenizer_json(tokenizer)
    special = tokenizer.manifest["special_ids"]
    sp = tokenizer.processor
    names = {key: sp.id_to_piece(i) for key, i in special.items() if i >= 0}
    special_map = {f"{key}_token": piece for key, piece in names.items()}
    files = {
        "tokenizer.json": document,
        "special_tokens_map.json": special_map,
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **special_map,
            "add_bos_token": False,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
        },
        "dapt_bundle.json": {"bundle": os.path.abspath(tokenizer.path), "sha256": tokenizer.sha256},
    }
    os.makedirs(output, exist_ok=True)
    written = []
    for name, content in files.items():
        path = os.path.join(output, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written
