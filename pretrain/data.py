"""Batches of token windows read straight from the ``dapt tokenize`` shards (memmap).

Input (``TOKDIR``, written by the tokenize stage): ``manifest.json`` with
``tokenizer_sha256``, ``vocab_size``, ``dtype`` (``uint16`` or ``uint32``) and ``shards``,
a list of ``{path, split, tokens, sha256}`` (``path`` relative to ``TOKDIR``); each shard
is a flat little-endian array of token ids, documents one after another, each ending in
EOS. Nothing is loaded into memory: the shards of a split are memory-mapped and read as
one stream.

Order (the same on every rank, on every run, from the seed alone): the train stream is cut
into ``seq_len + 1``-token windows at stride ``seq_len`` (the last token of a window is
the first target of the next, as in nanoGPT); every epoch visits each window once, in a
permutation drawn from ``(seed, epoch)``. Global step ``s`` takes positions
``[s * B, (s + 1) * B)`` of that endless order, ``B`` the global batch in sequences, and
rank ``r`` of ``W`` takes the ``r``-th of ``W`` contiguous equal parts. So the ranks'
slices are disjoint, their union is the batch a single process would see, and the data
position of a checkpoint is just the step: resuming at step ``s`` reads exactly what an
uninterrupted run would.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DTYPES = {"uint16": np.uint16, "uint32": np.uint32, "int32": np.int32}


class DataError(ValueError):
    """A token directory that cannot be trained on, phrased as one line naming the file."""


@dataclass(frozen=True)
class TokenManifest:
    root: Path
    raw: dict
    tokenizer_sha256: str
    vocab_size: int
    dtype: str

    def shards(self, split: str) -> list[Path]:
        return [self.root / s["path"] for s in self.raw["shards"] if s.get("split") == split]


def load_manifest(tokdir: str | Path) -> TokenManifest:
    """Read and check ``TOKDIR/manifest.json``: keys present, shard files there with the
    size their token count implies (a truncated copy is refused before training starts)."""
    root = Path(tokdir)
    path = root / "manifest.json"
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path}: no such file (run `dapt tokenize` first)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a JSON object")
    for key in ("tokenizer_sha256", "vocab_size", "dtype", "shards"):
        if key not in raw:
            raise DataError(f"{path}: missing key {key!r}")
    if raw["dtype"] not in DTYPES:
        raise DataError(f"{path}: dtype {raw['dtype']!r} is not one of {sorted(DTYPES)}")
    itemsize = np.dtype(DTYPES[raw["dtype"]]).itemsize
    for shard in raw["shards"]:
        file = root / shard["path"]
        if not file.is_file():
            raise DataError(f"{file}: shard listed in {path} is missing")
        if file.stat().st_size != shard["tokens"] * itemsize:
            raise DataError(
                f"{file}: {file.stat().st_size} bytes, but {path} says {shard['tokens']} "
                f"{raw['dtype']} tokens ({shard['tokens'] * itemsize} bytes)"
            )
    manifest = TokenManifest(root, raw, raw["tokenizer_sha256"], int(raw["vocab_size"]), raw["dtype"])
    if not manifest.shards("train"):
        raise DataError(f"{path}: no train shards")
    return manifest


def check_tokenizer(manifest: TokenManifest, bundle_sha256: str) -> None:
    """Refuse shards encoded by another tokenizer than the bundle the model will use."""
    if manifest.tokenizer_sha256 != bundle_sha256:
        raise DataError(
            f"{manifest.root / 'manifest.json'}: tokens were made with tokenizer sha256 "
            f"{manifest.tokenizer_sha256[:12]}..., but the bundle is {bundle_sha256[:12]}...; "
            "re-run `dapt tokenize` with this bundle"
        )


class TokenStream:
    """The shards of one split as one read-only sequence of token ids."""

    def __init__(self, paths: list[Path], dtype: str):
        self.maps = [np.memmap(p, dtype=DTYPES[dtype], mode="r") for p in paths]
        self.starts = np.cumsum([0] + [len(m) for m in self.maps])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read(self, start: int, n: int) -> np.ndarray:
        out = np.empty(n, dtype=np.int64)
        filled = 0
        shard = int(np.searchsorted(self.starts, start, side="right")) - 1
        while filled < n:
            offset = start + filled - int(self.starts[shard])
            piece = self.maps[shard][offset : offset + n - filled]
            out[filled : filled + len(piece)] = piece
            filled += len(piece)
            shard += 1
        return out


class Windows:
    """``seq_len + 1``-token windows of a stream at stride ``seq_len``."""

    def __init__(self, stream: TokenStream, seq_len: int, split: str):
        self.stream, self.seq_len = stream, seq_len
        self.count = (len(stream) - 1) // seq_len
        if self.count < 1:
            raise DataError(f"the {split} split has {len(stream)} tokens, fewer than seq_len + 1 = {seq_len + 1}")

    def batch(self, indices) -> tuple[torch.Tensor, torch.Tensor]:
        rows = np.stack([self.stream.read(int(i) * self.seq_len, self.seq_len + 1) for i in indices])
        tokens = torch.from_numpy(rows)
        return tokens[:, :-1], tokens[:, 1:]


class TrainBatches:
    """This rank's part of global batch ``step`` (see the module docstring)."""

    def __init__(self, manifest: TokenManifest, seq_len: int, global_batch: int, rank: int, world: int, seed: int):
        if global_batch % world:
            raise DataError(f"global batch {global_batch} is not a multiple of {world} processes")
        self.windows = Windows(TokenStream(manifest.shards("train"), manifest.dtype), seq_len, "train")
        self.global_batch, self.rank, self.world, self.seed = global_batch, rank, world, seed
        self._epoch, self._order = -1, np.empty(0, dtype=np.int64)

    def _order_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            rng = np.random.Generator(np.random.PCG64([self.seed, epoch]))
            self._epoch, self._order = epoch, rng.permutation(self.windows.count)
        return self._order

    def indices(self, step: int) -> list[int]:
        per_rank = self.global_batch // self.world
        first = step * self.global_batch + self.rank * per_rank
        out = []
        for position in range(first, first + per_rank):
            epoch, i = divmod(position, self.windows.count)
            out.append(int(self._order_of(epoch)[i]))
        return out

    def get(self, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.windows.batch(self.indices(step))


class ValWindows:
    """This rank's validation windows: ``rank, rank + world, ...`` of the first
    ``max_sequences``, cut to a multiple of ``world`` so that every rank runs the same
    number of forwards (FSDP gathers weights in each one, all ranks together). Checked when
    made, so a val split too short for the run stops it before it trains, not at its first
    evaluation."""

    def __init__(self, manifest: TokenManifest, seq_len: int, max_sequences: int, rank: int, world: int):
        paths = manifest.shards("val")
        if not paths:
            raise DataError(f"{manifest.root / 'manifest.json'}: no val shards (tokenize with val_fraction > 0)")
        self.windows = Windows(TokenStream(paths, manifest.dtype), seq_len, "val")
        usable = min(self.windows.count, max_sequences) // world * world
        if usable == 0:
            raise DataError(f"the val split has {self.windows.count} windows, fewer than {world} processes")
        self.mine = list(range(rank, usable, world))

    def batches(self, batch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(self.mine), batch):
            yield self.windows.batch(self.mine[i : i + batch])
