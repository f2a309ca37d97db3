"""The decoder-only language model, built from a :class:`pretrain.shape.ModelShape`.

One readable module in the style of nanoGPT, with Llama's choices (Touvron et al. 2023,
arXiv:2302.13971): pre-norm RMSNorm blocks, rotary position embeddings, bias-free
projections, a SwiGLU MLP and an untied output head unless the shape ties it. Attention
is :func:`torch.nn.functional.scaled_dot_product_attention`, which picks the flash or
memory-efficient kernel on a GPU and the math kernel on a CPU.

Nothing here knows about processes, sharding or precision: :mod:`pretrain.parallelize`
wraps the model, :mod:`pretrain.train` trains it. Every parameter is counted by
:func:`pretrain.shape.param_breakdown`, so the plan's ``params_exact`` is this model's
``sum(p.numel() for p in model.parameters())``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from pretrain.shape import ModelShape

#: RoPE base frequency of Su et al. 2021 and Llama 1/2.
ROPE_THETA = 10000.0
#: Initial weight std of GPT-2 (Radford et al. 2019), kept by nanoGPT and OLMo.
INIT_STD = 0.02
NORM_EPS = 1e-5


class RMSNorm(nn.Module):
    """Root-mean-square norm with a learned scale and no bias (Zhang & Sennrich 2019)."""

    def __init__(self, dim: int, eps: float = NORM_EPS):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 even under autocast: the mean of squares underflows in bf16.
        norm = x.float() * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + self.eps)
        return norm.type_as(x) * self.weight


def rope_tables(head_dim: int, seq_len: int, theta: float = ROPE_THETA) -> tuple[torch.Tensor, torch.Tensor]:
    """``cos`` and ``sin`` of shape ``(seq_len, head_dim / 2)`` for rotating pairs of channels."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
    angles = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs ``(x[2i], x[2i+1])`` of ``x`` (batch, heads, time, head_dim)."""
    t = x.shape[-2]
    pairs = x.float().unflatten(-1, (-1, 2))
    real, imag = pairs[..., 0], pairs[..., 1]
    c, s = cos[:t], sin[:t]
    rotated = torch.stack((real * c - imag * s, real * s + imag * c), dim=-1)
    return rotated.flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        d = shape.d_model
        self.n_head = shape.n_head
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape

        def heads(proj: nn.Linear) -> torch.Tensor:
            return proj(x).view(b, t, self.n_head, d // self.n_head).transpose(1, 2)

        q, k, v = apply_rope(heads(self.q), cos, sin), apply_rope(heads(self.k), cos, sin), heads(self.v)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(b, t, d))


class SwiGLU(nn.Module):
    """``down(silu(gate(x)) * up(x))`` (Shazeer 2020, "GLU Variants Improve Transformer")."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.gate = nn.Linear(shape.d_model, shape.ffn_hidden, bias=False)
        self.up = nn.Linear(shape.d_model, shape.ffn_hidden, bias=False)
        self.down = nn.Linear(shape.ffn_hidden, shape.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    def __init__(self, shape: ModelShape):
        super().__init__()
        self.attn_norm = RMSNorm(shape.d_model)
        self.attn = Attention(shape)
        self.mlp_norm = RMSNorm(shape.d_model)
        self.mlp = SwiGLU(shape)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    """Token ids ``(batch, time)`` in, logits ``(batch, time, vocab)`` out."""

    def __init__(self, shape: ModelShape):
        super().__init__()
        self.shape = shape
        self.embed = nn.Embedding(shape.vocab_size, shape.d_model)
        self.blocks = nn.ModuleList(Block(shape) for _ in range(shape.n_layer))
        self.norm = RMSNorm(shape.d_model)
        self.lm_head = nn.Linear(shape.d_model, shape.vocab_size, bias=False)
        if shape.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        # Buffers, not parameters: they are rebuilt from the shape and never saved.
        cos, sin = rope_tables(shape.head_dim, shape.seq_len)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """GPT-2 init: N(0, 0.02), residual output projections scaled by ``1/sqrt(2 n_layer)``
        so the residual stream's variance does not grow with depth (Radford et al. 2019)."""
        residual_std = INIT_STD / math.sqrt(2 * self.shape.n_layer)
        for name, p in self.named_parameters():
            if p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith(("attn.o.weight", "mlp.down.weight")):
                nn.init.normal_(p, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(p, mean=0.0, std=INIT_STD)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        if idx.shape[1] > self.shape.seq_len:
            raise ValueError(f"sequence of {idx.shape[1]} tokens exceeds seq_len {self.shape.seq_len}")
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        return self.lm_head(self.norm(x))


def causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of next-token prediction, computed in fp32."""
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), reduction=reduction)


def flops_per_token(shape: ModelShape) -> float:
    """Training FLOPs per token: ``6 N`` for the non-embedding weights plus attention's
    ``6 * 2 * n_layer * seq_len * d_model`` (Chowdhery et al. 2022, PaLM, App. B), the
    definition MFU is reported with."""
    n = shape.n_layer * (4 * shape.d_model**2 + 3 * shape.d_model * shape.ffn_hidden)
    n += shape.vocab_size * shape.d_model  # the head is a matmul; the embedding lookup is not
    return 6.0 * n + 12.0 * shape.n_layer * shape.seq_len * shape.d_model
