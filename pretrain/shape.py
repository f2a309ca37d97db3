"""The shape of the decoder the pretraining stage builds, and its exact parameter count.

The planner sizes the model in parameters; the model code builds it from a
:class:`ModelShape`. Both go through :func:`param_breakdown`, so the count the plan
reports is the count of the model that trains.

The architecture is a Llama-style decoder-only transformer (Touvron et al. 2023,
"LLaMA: Open and Efficient Foundation Language Models", arXiv:2302.13971):

* token embedding ``vocab_size x d_model``; rotary position embeddings (Su et al. 2021,
  RoFormer), which have no parameters;
* per block: RMSNorm (weight only, no bias) before attention and before the MLP;
  bias-free ``q, k, v, o`` projections, each ``d_model x d_model`` (``n_head`` heads of
  ``head_dim = d_model / n_head``, no grouped-query sharing); a SwiGLU MLP (Shazeer 2020,
  "GLU Variants Improve Transformer") with three bias-free matrices ``gate`` and ``up``
  (``d_model -> ffn_hidden``) and ``down`` (``ffn_hidden -> d_model``);
* a final RMSNorm, then the output head ``d_model x vocab_size`` without bias, a separate
  matrix unless ``tie_embeddings`` (untied by default, as in Llama and Chinchilla: the
  head then costs ``vocab_size x d_model`` more parameters, which the count includes).

``ffn_hidden`` follows Llama: two thirds of the classic ``4 * d_model`` (so SwiGLU's three
matrices cost what two GELU matrices would), rounded up to a multiple of 256 for
tensor-core friendly tiles; ``d_model = 4096`` gives Llama-7B's 11008.

Shape rule (:func:`shape_for_params`): Kaplan et al. 2020 ("Scaling Laws for Neural
Language Models", Fig. 5) find the loss at a fixed parameter count changes only a few
percent while the aspect ratio ``d_model / n_layer`` moves over a factor of 40, so the
ratio is a convention, not a tuning knob. We follow the 50 shapes Hoffmann et al. 2022
trained (Chinchilla, Table A9, 44M to 16B parameters): a least-squares fit of their
ratio against total parameters gives ``d_model / n_layer ~= 5.5 * N**0.125`` (64 near
100M, 73 at 1B, 97 at 10B; Chinchilla-70B itself has 8192 / 80 = 102). Table A9 also
fixes the head size: 64 up to ``d_model = 1024``, 128 above, with ``d_model`` a multiple
of the head size.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

#: Llama's ``multiple_of``: the SwiGLU hidden size is rounded up to this.
FFN_MULTIPLE = 256
#: Table A9 of Hoffmann et al. 2022 switches from 64-wide to 128-wide heads above this.
WIDE_HEAD_FROM = 1024
#: ``d_model / n_layer ~= ASPECT_COEF * N ** ASPECT_EXP`` (fit to Chinchilla Table A9).
ASPECT_COEF = 5.5
ASPECT_EXP = 0.125
#: Shapes within this relative error of the target count compete on aspect ratio.
COUNT_TOLERANCE = 0.02
MAX_LAYERS = 512


def ffn_hidden_for(d_model: int) -> int:
    """SwiGLU hidden size for ``d_model``: ``8/3 * d_model`` rounded up to a multiple of 256."""
    return FFN_MULTIPLE * math.ceil(8 * d_model / 3 / FFN_MULTIPLE)


def head_dim_for(d_model: int) -> int:
    """Head size for ``d_model`` as in Chinchilla's Table A9: 64, or 128 above 1024."""
    return 64 if d_model <= WIDE_HEAD_FROM else 128


@dataclass(frozen=True)
class ModelShape:
    """Everything about the decoder that changes its parameter count (plus ``seq_len``)."""

    n_layer: int
    d_model: int
    n_head: int
    vocab_size: int
    seq_len: int
    ffn_hidden: int
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        for name in ("n_layer", "d_model", "n_head", "vocab_size", "seq_len", "ffn_hidden"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"ModelShape.{name} must be a positive integer, got {value!r}")
        if self.d_model % self.n_head:
            raise ValueError(
                f"ModelShape.d_model ({self.d_model}) must be a multiple of n_head ({self.n_head})"
            )
        if self.head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head_dim, got {self.head_dim}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelShape:
        """Build from a dict such as a plan's ``model`` entry; keys that are not fields
        (``params_exact``, ``head_dim``) are ignored."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def param_breakdown(shape: ModelShape) -> dict[str, int]:
    """Parameters per component of the model, in the order the model holds them."""
    d, f, n = shape.d_model, shape.ffn_hidden, shape.n_layer
    return {
        "embedding": shape.vocab_size * d,
        "attention": n * 4 * d * d,
        "mlp": n * 3 * d * f,
        "norms": (2 * n + 1) * d,
        "lm_head": 0 if shape.tie_embeddings else shape.vocab_size * d,
    }


def param_count(shape: ModelShape) -> int:
    """Exact number of parameters (``sum(p.numel() for p in model.parameters())``)."""
    return sum(param_breakdown(shape).values())


def _shape(n_layer: int, d_model: int, vocab_size: int, seq_len: int, tie: bool) -> ModelShape:
    return ModelShape(
        n_layer=n_layer,
        d_model=d_model,
        n_head=d_model // head_dim_for(d_model),
        vocab_size=vocab_size,
        seq_len=seq_len,
        ffn_hidden=ffn_hidden_for(d_model),
        tie_embeddings=tie,
    )


def _widths_near(x: float) -> list[int]:
    """Allowed ``d_model`` values around ``x``: multiples of the head size (Table A9)."""
    widths = set()
    for step in (64, 128):
        k = math.floor(x / step)
        for m in range(k - 1, k + 3):
            d = m * step
            if d >= 64 and (d <= WIDE_HEAD_FROM or d % 128 == 0):
                widths.add(d)
    return sorted(widths)


def _closest_width(target: float, n_layer: int, vocab_size: int, seq_len: int, tie: bool):
    """``(relative error, shape)`` for the allowed width whose count is nearest ``target``."""
    heads = 1 if tie else 2
    # With ffn_hidden ~= 8/3 d the count is ~ 12 L d^2 + (heads V + 2L + 1) d: solve that,
    # then let the exact count decide among the allowed widths around the root.
    a, b = 12.0 * n_layer, heads * vocab_size + 2.0 * n_layer + 1.0
    root = (-b + math.sqrt(b * b + 4 * a * target)) / (2 * a)
    shapes = [_shape(n_layer, d, vocab_size, seq_len, tie) for d in _widths_near(root)]
    return min((abs(param_count(s) - target) / target, s) for s in shapes)


def aspect_ratio_for(params: float) -> float:
    """Target ``d_model / n_layer`` for a model of ``params`` parameters (Table A9 fit)."""
    return ASPECT_COEF * params**ASPECT_EXP


def shape_for_params(
    target: float, vocab_size: int, seq_len: int, tie_embeddings: bool = False
) -> ModelShape:
    """The shape whose exact count is within 2% of ``target`` (when any is) and whose
    ``d_model / n_layer`` is nearest the Table A9 rule; else the nearest count.

    ``target`` counts all parameters, embeddings included, as Hoffmann et al. 2022 do.
    When the embeddings alone exceed it, the smallest model (one block, ``d_model`` 64)
    comes back and its count says by how much.
    """
    if target <= 0:
        raise ValueError(f"target parameter count must be positive, got {target}")
    ideal = math.log(aspect_ratio_for(target))
    candidates = [
        _closest_width(target, n_layer, vocab_size, seq_len, tie_embeddings)
        for n_layer in range(1, MAX_LAYERS + 1)
    ]
    close = [c for c in candidates if c[0] <= COUNT_TOLERANCE]
    if not close:
        return min(candidates, key=lambda c: c[0])[1]
    return min(
        close, key=lambda c: (abs(math.log(c[1].d_model / c[1].n_layer) - ideal), c[0])
    )[1]
