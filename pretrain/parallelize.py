"""How the model is spread over processes, kept apart from what the model is.

* ``ddp`` (default): every rank holds the whole model; gradients are all-reduced
  (``DistributedDataParallel``).
* ``fsdp``: FSDP2's ``fully_shard`` on every block and then the root, as torchtitan does,
  so parameters, gradients and optimizer states are sharded over the ranks and a block's
  weights are gathered only while it runs.
* activation checkpointing wraps each block (its activations are recomputed in the
  backward pass); ``torch.compile`` compiles each block, as torchtitan does, which keeps
  compile time flat in depth and works under both wrappings.

The same calls run with gloo on CPU and NCCL on CUDA; only the device differs.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

PARALLELISMS = ("ddp", "fsdp")


def setup_distributed() -> tuple[int, int, torch.device]:
    """Join the process group torchrun set up (or a one-process group without torchrun),
    unless this process already has one, which is then used as it is; return
    ``(rank, world_size, device)``: a CUDA device per local rank when there is one, else
    the CPU."""
    cuda = torch.cuda.is_available()
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        if "WORLD_SIZE" in os.environ:
            dist.init_process_group(backend)
        else:
            # Collectives (FSDP's, the state-dict helpers') need a group even for one process.
            dist.init_process_group(backend, store=dist.HashStore(), rank=0, world_size=1)
    rank, world = dist.get_rank(), dist.get_world_size()
    if cuda:
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def teardown_distributed() -> None:
    """Barrier and destroy the group, so the process can start another one (a second
    ``train()`` in the same interpreter). A process under torchrun then leaves by
    ``os._exit`` (``python -m pretrain.train`` does): a gloo rank aborted at interpreter
    exit after ``destroy_process_group`` in 5 of 26 runs, and ``os._exit(0)`` after
    barrier + destroy in 0 of 16 (../shared/STACK.md). A process that called ``train()``
    itself goes on normally."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def parallelize(
    model: nn.Module,
    device: torch.device,
    parallelism: str = "ddp",
    activation_checkpointing: bool = False,
    compile: bool = False,
    mixed_bf16: bool = False,
) -> nn.Module:
    """Wrap ``model`` (already on ``device``) for training; returns the module to call."""
    if parallelism not in PARALLELISMS:
        raise ValueError(f"parallelism must be one of {PARALLELISMS}, got {parallelism!r}")
    if activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

        # The wrapper's state-dict hooks drop its prefix, so checkpoints keep plain names.
        for i, block in enumerate(model.blocks):
            model.blocks[i] = checkpoint_wrapper(block)
    if compile:
        for block in model.blocks:
            block.compile()
    if parallelism == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        from torch.distributed.device_mesh import init_device_mesh

        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
        # bf16 compute with fp32 gradient reduction, torchtitan's default policy.
        policy = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32) if mixed_bf16 else MixedPrecisionPolicy()
        for block in model.blocks:
            fully_shard(block, mesh=mesh, mp_policy=policy)
        fully_shard(model, mesh=mesh, mp_policy=policy)
        return model
    if dist.get_world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
