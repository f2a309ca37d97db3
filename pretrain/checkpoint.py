"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, all hashed.

Layout of ``RUNDIR/checkpoints/step-NNNNNNNN/`` (and ``best/``, a hard-linked copy of the
step with the lowest validation loss):

=========================  ==========================================================
``model.safetensors``      full (unsharded) weights by parameter name, fp32
``optimizer.safetensors``  AdamW moments and step counts, ``state/<param>/<key>``
``optimizer.json``         the optimizer's param groups (lr, betas, weight decay, ...)
``rng-rank<R>.safetensors`` each rank's CPU (and CUDA) generator state
``state.json``             step, tokens seen, data position, scheduler, early stopping,
                           MLflow run id, model shape, tokenizer sha256
``manifest.json``          sha256 of every file above, written last
=========================  ==========================================================

Weights are gathered to full tensors (``torch.distributed.checkpoint.state_dict`` with
``full_state_dict``), so a checkpoint written by FSDP loads into DDP, one process or the
inference code, and vice versa. Loading reads safetensors and JSON only (no
``torch.load``), and refuses a directory whose files do not hash to its manifest, which
also catches a checkpoint cut short by a kill: the directory is written under a temporary
name and renamed when complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

MANIFEST = "manifest.json"
FORMAT = "dapt-checkpoint-1"


class CheckpointError(ValueError):
    """A checkpoint that must not be loaded, phrased as one line naming the file."""


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:08d}"


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _full_options(**extra):
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, **extra)


def _untie(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory (tied embeddings): copy the repeats."""
    seen: set[int] = set()
    out = {}
    for name, tensor in tensors.items():
        tensor = tensor.detach().contiguous()
        ptr = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return out


def _flatten_optimizer(osd: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for param, entries in osd["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"state/{param}/{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(param, {})[key] = value
    return tensors, {"param_groups": osd["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[str, dict] = {}
    for name, value in tensors.items():
        _, rest = name.split("/", 1)
        param, key = rest.rsplit("/", 1)
        state.setdefault(param, {})[key] = value
    for param, entries in meta["scalars"].items():
        state.setdefault(param, {}).update(entries)
    return {"state": state, "param_groups": meta["param_groups"]}


def save(root: Path, step: int, model, optimizer, state: dict, rank: int, keep_last: int, best: bool) -> Path:
    """Write ``step-N`` (every rank calls this: gathering FSDP shards is collective)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    model_sd = get_model_state_dict(model, options=_full_options(cpu_offload=True))
    optim_sd = get_optimizer_state_dict(model, optimizer, options=_full_options(cpu_offload=True))
    final = step_dir(root, step)
    staging = root / f".staging-step-{step:08d}"
    if rank == 0:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    _barrier()
    rng = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state()
    save_file(rng, staging / f"rng-rank{rank}.safetensors")
    if rank == 0:
        save_file(_untie(model_sd), staging / "model.safetensors")
        tensors, meta = _flatten_optimizer(optim_sd)
        save_file(tensors, staging / "optimizer.safetensors")
        (staging / "optimizer.json").write_text(json.dumps(meta), encoding="utf-8")
        (staging / "state.json").write_text(json.dumps(state, indent=2), encoding="utf-8")
    _barrier()
    if rank == 0:
        files = {p.name: sha256_file(p) for p in sorted(staging.iterdir())}
        (staging / MANIFEST).write_text(
            json.dumps({"format": FORMAT, "step": step, "files": files}, indent=2), encoding="utf-8"
        )
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        if best:
            _copy_as_best(root, final)
        _prune(root, keep_last)
    _barrier()
    return final


def _barrier() -> None:
    if _distributed():
        dist.barrier()


def _copy_as_best(root: Path, source: Path) -> None:
    staging = root / ".staging-best"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    for file in source.iterdir():
        try:
            os.link(file, staging / file.name)
        except OSError:  # another filesystem or no hard links (some object-store mounts)
            shutil.copy2(file, staging / file.name)
    shutil.rmtree(root / "best", ignore_errors=True)
    os.replace(staging, root / "best")


def _prune(root: Path, keep_last: int) -> None:
    for old in list_steps(root)[:-keep_last]:
        shutil.rmtree(old)


def list_steps(root: Path) -> list[Path]:
    """Complete step directories, oldest first."""
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / MANIFEST).is_file())


def verify(directory: Path) -> dict:
    """The manifest of ``directory`` once every file in it hashes to what it lists."""
    manifest_path = directory / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{manifest_path}: missing (incomplete checkpoint)") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{manifest_path}: unreadable: {exc}") from None
    if manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        raise CheckpointError(f"{manifest_path}: not a {FORMAT} manifest")
    present = {p.name for p in directory.iterdir() if p.name != MANIFEST}
    for extra in sorted(present - set(manifest["files"])):
        raise CheckpointError(f"{directory / extra}: not listed in the manifest (tampered checkpoint?)")
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file():
            raise CheckpointError(f"{path}: listed in the manifest but missing")
        if sha256_file(path) != expected:
            raise CheckpointError(f"{path}: sha256 differs from the manifest (tampered or corrupt checkpoint)")
    return manifest


def read_state(directory: Path) -> dict:
    verify(directory)
    return json.loads((directory / "state.json").read_text(encoding="utf-8"))


def load_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Full weights of a verified checkpoint, for inference or export."""
    verify(directory)
    return load_file(directory / "model.safetensors")


def load(directory: Path, model, optimizer, rank: int, expect: dict | None = None) -> dict:
    """Restore model, optimizer and this rank's RNG in place; return ``state.json``.
    ``expect``: entries ``state.json`` must have (checked before any tensor is touched)."""
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    verify(directory)
    state = json.loads((directory / "state.json").read_text(encoding="utf-8"))
    for key, value in (expect or {}).items():
        if state.get(key) != value:
            raise CheckpointError(
                f"{directory}: checkpoint of another run ({key} differs: another model shape, batch, seed "
                "or token set); use a new --output"
            )
    set_model_state_dict(model, load_file(directory / "model.safetensors"), options=_full_options())
    meta = json.loads((directory / "optimizer.json").read_text(encoding="utf-8"))
    osd = _unflatten_optimizer(load_file(directory / "optimizer.safetensors"), meta)
    set_optimizer_state_dict(model, optimizer, osd, options=_full_options())
    rng_file = directory / f"rng-rank{rank}.safetensors"
    if rng_file.is_file():
        rng = load_file(rng_file)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return state
