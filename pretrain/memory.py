"""Memory per GPU for training a model with Adam.

Model states, in bytes per parameter, follow the accounting of Rajbhandari et al. 2020
("ZeRO: Memory Optimizations Toward Training Trillion Parameter Models", Sec. 3.1):

=============  =======  =========  =================================================
precision      weights  gradients  optimizer states
=============  =======  =========  =================================================
fp32, tf32     4        4          8   (Adam first and second moments in fp32)
*-mixed        2        2          12  (fp32 master weights + both moments: ZeRO's K=12)
bf16 (pure)    2        2          4   (both moments in bf16)
=============  =======  =========  =================================================

So a 1B-parameter model takes 4 GB to store in fp32 and 16 GB of states to train, in
fp32 or mixed precision alike; mixed precision saves activation memory and time, not
state memory. Fully sharded data parallelism (FSDP; ZeRO stage 3) divides all three
states by the number of GPUs it shards over; activations are per GPU and are not divided.

Activations and temporaries: without a micro-batch size, the rule of thumb of 8 bytes per
parameter (so 1B parameters need about 24 GB to train in fp32). With one, they come from
the shape, in the manner of Korthikanti et al. 2022 ("Reducing Activation Recomputation
in Large Transformer Models", Sec. 4.1), redone for this decoder with fused (flash)
attention and no dropout. Per token and block the backward pass keeps both norms' inputs
and outputs (4 d), q, k and v after RoPE (3 d), the attention output (d), and the SwiGLU
gate, up, SiLU(gate) and product (4 ffn_hidden) elements; after the last block the final
norm's input and output (2 d), and the logits in the compute dtype plus the fp32
log-probabilities cross-entropy keeps (vocab x (bytes + 4)). No activation checkpointing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pretrain.shape import ModelShape

GB = 1e9

#: (weights, gradients, optimizer states) in bytes per parameter.
STATE_BYTES = {
    "fp32": (4, 4, 8),
    "tf32": (4, 4, 8),
    "bf16-mixed": (2, 2, 12),
    "fp16-mixed": (2, 2, 12),
    "bf16": (2, 2, 4),
}
#: Bytes per activation element: 16-bit compute keeps 16-bit activations.
ACTIVATION_BYTES = {"fp32": 4, "tf32": 4, "bf16-mixed": 2, "fp16-mixed": 2, "bf16": 2}
#: Activations and temporaries per parameter when no micro-batch is given.
RULE_OF_THUMB_ACTIVATION_BYTES = 8
#: Share of an accelerator's memory a plan may use: the CUDA context, NCCL buffers and
#: allocator fragmentation take the rest.
USABLE_FRACTION = 0.9
SHARDINGS = ("none", "fsdp")


@dataclass(frozen=True)
class MemoryEstimate:
    weights_gb: float
    gradients_gb: float
    optimizer_gb: float
    activations_gb: float
    precision: str
    sharding: str
    shards: int
    activations_from: str

    @property
    def states_gb(self) -> float:
        return self.weights_gb + self.gradients_gb + self.optimizer_gb

    @property
    def total_gb_per_gpu(self) -> float:
        return self.states_gb + self.activations_gb

    def to_json(self) -> dict:
        return {
            "weights_gb": round(self.weights_gb, 3),
            "gradients_gb": round(self.gradients_gb, 3),
            "optimizer_gb": round(self.optimizer_gb, 3),
            "activations_gb": round(self.activations_gb, 3),
            "total_gb_per_gpu": round(self.total_gb_per_gpu, 3),
            "precision": self.precision,
            "sharding": self.sharding,
            "shards": self.shards,
            "activations_from": self.activations_from,
        }


def activation_bytes(shape: ModelShape, micro_batch: int, precision: str) -> int:
    """Bytes of activations one GPU holds for a micro-batch of ``micro_batch`` sequences."""
    b = ACTIVATION_BYTES[precision]
    d, f = shape.d_model, shape.ffn_hidden
    per_token = (
        shape.n_layer * (8 * d + 4 * f) * b + 2 * d * b + shape.vocab_size * (b + 4)
    )
    return micro_batch * shape.seq_len * per_token


def estimate_memory(
    params: int,
    precision: str,
    sharding: str = "none",
    gpus: int = 1,
    shape: ModelShape | None = None,
    micro_batch: int | None = None,
) -> MemoryEstimate:
    """Memory per GPU for ``params`` parameters; shape-based activations need both
    ``shape`` and ``micro_batch``."""
    w, g, o = STATE_BYTES[precision]
    shards = gpus if sharding == "fsdp" else 1
    if shape is not None and micro_batch:
        act = activation_bytes(shape, micro_batch, precision)
        source = f"shape, micro-batch {micro_batch} x {shape.seq_len} tokens"
    else:
        act = RULE_OF_THUMB_ACTIVATION_BYTES * params
        source = f"rule of thumb, {RULE_OF_THUMB_ACTIVATION_BYTES} bytes/parameter"
    return MemoryEstimate(
        weights_gb=w * params / shards / GB,
        gradients_gb=g * params / shards / GB,
        optimizer_gb=o * params / shards / GB,
        activations_gb=act / GB,
        precision=precision,
        sharding=sharding,
        shards=shards,
        activations_from=source,
    )


def fit_advice(memory: MemoryEstimate, capacity_gb: float, gpus: int) -> str | None:
    """``None`` when the plan fits ``capacity_gb`` per GPU, else what would make it fit:
    FSDP over the GPUs given, the smallest GPU count FSDP needs, or smaller activations."""
    usable = USABLE_FRACTION * capacity_gb
    if memory.total_gb_per_gpu <= usable:
        return None
    need = f"needs {memory.total_gb_per_gpu:.1f} GB per GPU, more than {usable:.0f} GB usable"
    if memory.activations_gb >= usable:
        return (
            f"{need}; activations alone take {memory.activations_gb:.1f} GB: "
            "lower --micro-batch or --seq-len"
        )
    full_states = memory.states_gb * memory.shards
    smallest = math.ceil(full_states / (usable - memory.activations_gb))
    if memory.sharding == "none" and smallest <= gpus:
        return f"{need}; --sharding fsdp over the {gpus} GPUs fits"
    return f"{need}; the smallest that fits is --sharding fsdp over {smallest} GPUs"
