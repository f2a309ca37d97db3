"""A corpus of every kind of bad input the reader must survive, with what to expect."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

GOOD_TEXT = (
    "The committee reviewed the quarterly results and noted that revenue grew by four "
    "percent while operating costs were held flat. Members agreed that the outlook for "
    "the coming year remained stable and that no change to the dividend was needed."
)


def write_bad_corpus(root: Path) -> dict:
    """Write the files under ``root``; return the expected counts.

    ``quarantined`` counts the records that must land in quarantine; ``documents`` the
    records that are readable (kept or rejected by the filters, never lost).
    """
    root.mkdir(parents=True, exist_ok=True)
    good = lambda i: json.dumps({"id": f"good-{i}", "text": f"{GOOD_TEXT} Item {i}."})  # noqa: E731

    lines = [good(0).encode()]
    lines.append(b'{"id": "bad-utf8", "text": "caf\xe9 au lait \xff\xfe"}')  # invalid UTF-8
    lines.append(b'{"id": "malformed", "text": "unterminated')  # malformed JSON
    lines.append(b'["not", "an", "object"]')
    lines.append(json.dumps({"id": "no-text", "body": "wrong field"}).encode())
    lines.append(json.dumps({"id": "int-text", "text": 12345}).encode())
    lines.append(json.dumps({"id": "nul", "text": "binary\u0000junk\u0000here"}).encode())
    lines.append(good(1).encode())
    lines.append(json.dumps({"id": "huge", "text": ("word " * 1_000_000)[:5_000_000]}).encode())
    # JSON that parses into strings UTF-8 cannot hold, or into nesting that Beam cannot
    # pickle, or that Python will not parse (each of these crashed the whole job once); an
    # escaped surrogate pair is fine.
    lines.append(b'{"id": "lone-surrogate", "text": "' + GOOD_TEXT.encode() + b' \\ud800"}')
    lines.append(b'{"id": "deep", "meta": ' + b"[" * 900 + b"]" * 900 + b', "text": "' + GOOD_TEXT.encode() + b'"}')
    lines.append(b'{"id": "deeper", "meta": ' + b"[" * 5000 + b"]" * 5000 + b', "text": "' + GOOD_TEXT.encode() + b'"}')
    lines.append(b'{"id": "emoji", "text": "' + GOOD_TEXT.encode() + b' \\ud83d\\ude00"}')
    lines.append(b'{"id": "long-number", "n": ' + b"7" * 5000 + b', "text": "' + GOOD_TEXT.encode() + b'"}')
    (root / "mixed.jsonl").write_bytes(b"\n".join(lines) + b"\n")

    (root / "empty.jsonl").write_bytes(b"")

    payload = "\n".join(good(i) for i in range(2, 400)).encode()
    compressed = gzip.compress(payload, mtime=0)
    (root / "truncated.jsonl.gz").write_bytes(compressed[: len(compressed) // 2])

    # A name that matches the corpus glob but cannot be opened (a dangling link, as a
    # file on an unmounted share looks); permission bits would not stop root.
    (root / "unreadable.jsonl").symlink_to(root / "gone" / "missing.jsonl")

    return {"quarantined_min": 11, "documents_min": 4}
