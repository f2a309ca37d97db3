"""Scaling laws: compute-optimal size, predicted loss, repeated data, inference cost.

Compute: training a dense transformer of N parameters on D tokens costs C ~= 6 N D
FLOPs (Kaplan et al. 2020, "Scaling Laws for Neural Language Models", Sec. 2.1: 2 N per
token forward, 4 N backward), the approximation Hoffmann et al. 2022 plan with. A
petaFLOP/s-day is 1e15 * 86400 = 8.64e19 FLOPs.

Compute-optimal allocation, Hoffmann et al. 2022 ("Training Compute-Optimal Large
Language Models", the Chinchilla paper), N_opt ~ C^a and D_opt ~ C^b:

* Approach 1 (minimum over training curves), Table 2: a = 0.50, b = 0.50; projected in
  Table 3. Approach 2 (IsoFLOP profiles), Table 2: a = 0.49, b = 0.51; projected in
  Table A3. The paper gives the exponents but not the coefficients, so both laws are
  ``N_opt = k * C**a`` with (a, k) fitted to the nine projected rows: the Chebyshev
  (minimax) fit of the relative errors in both directions, FLOPs -> (N, D) and
  N -> (D, FLOPs). It recovers the published exponents (0.4982 and 0.4900) and
  reproduces every row within 4.1% (Approach 1) and 3.9% (Approach 2). Least squares
  would do worse on one row: Table 3's 67B row is inconsistent with itself
  (6 x 67e9 x 1.5e12 = 6.03e23 FLOPs, not the 5.76e23 printed), and a fit that ignores
  that misses its tokens by 6-7%. Tokens follow from D = C / (6 N), so about 20 tokens
  per parameter.
* Approach 3 (parametric fit), Eq. 2 and Sec. 3.3: L(N, D) = E + A / N^alpha + B / D^beta
  with E = 1.69, A = 406.4, B = 410.7, alpha = 0.34, beta = 0.28. Minimising it under
  C = 6 N D gives N_opt = G (C/6)^a, D_opt = G^-1 (C/6)^b, a = beta / (alpha + beta),
  b = alpha / (alpha + beta), G = (alpha A / (beta B))^(1 / (alpha + beta)) (Eq. 4):
  a = 0.45, about 50 tokens per parameter at 1e21 FLOPs, rising with compute.

Besiroglu, Erdil, Barnett and You 2024 ("Chinchilla Scaling: A replication attempt",
Epoch AI, arXiv:2404.10102) refit Approach 3 to data reconstructed from the paper and
find E = 1.8172, A = 482.01, B = 2085.43, alpha = 0.3478, beta = 0.3658: a = 0.513,
about 20 tokens per parameter as Approaches 1 and 2 find. The published rounded
constants above bias the optimum to far more tokens per parameter. The Epoch fit is the
default law here and predicts the loss for the laws that have no loss model of their
own (Approaches 1 and 2).

Repeated data, Muennighoff et al. 2023 ("Scaling Data-Constrained Language Models",
NeurIPS, Eq. 5): with U_D unique tokens seen for R_D repetitions after the first epoch,
the data are worth D' = U_D + U_D R_D* (1 - exp(-R_D / R_D*)) fresh tokens, R_D* ~= 15.4;
parameters beyond U_N, the compute-optimal size for U_D tokens, are worth
N' = U_N + U_N R_N* (1 - exp(-R_N / R_N*)), R_N = N / U_N - 1, R_N* ~= 5.3; the loss is
the parametric law at (N', D'). Up to about 4 epochs repeated data is nearly as good as
new (their Fig. 3). Because excess parameters lose value faster than repeated tokens,
when data run short the loss-optimal model is smaller than the Chinchilla one and trains
for more epochs. With the unique tokens known the planner predicts every loss with this
form; it equals the plain law for a model no bigger than compute-optimal for the tokens
it sees once (R_N = R_D = 0), and charges a model that is bigger.

Inference, Sardana and Frankle 2023 ("Beyond Chinchilla-Optimal: Accounting for Inference
in Language Model Scaling Laws", arXiv:2401.00448): serving D_inf tokens costs
2 N D_inf FLOPs, so for a target loss minimise 6 N D_train + 2 N D_inf over the
(N, D_train) that reach it; heavy serving favours a smaller model trained longer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

FLOPS_PER_PARAM_TOKEN = 6.0
INFERENCE_FLOPS_PER_PARAM_TOKEN = 2.0
PF_DAY_FLOPS = 1e15 * 86400
R_D_STAR = 15.4
R_N_STAR = 5.3
#: Muennighoff et al. 2023: up to about this many epochs, repeated tokens are nearly
#: as good as new ones.
NEARLY_FRESH_EPOCHS = 4.0

#: Hoffmann et al. 2022, Table 3 (Approach 1): (parameters, FLOPs, tokens).
CHINCHILLA_TABLE_3 = (
    (400e6, 1.92e19, 8.0e9),
    (1e9, 1.21e20, 20.2e9),
    (10e9, 1.23e22, 205.1e9),
    (67e9, 5.76e23, 1.5e12),
    (175e9, 3.85e24, 3.7e12),
    (280e9, 9.90e24, 5.9e12),
    (520e9, 3.43e25, 11.0e12),
    (1e12, 1.27e26, 21.2e12),
    (10e12, 1.30e28, 216.2e12),
)
#: Hoffmann et al. 2022, Table A3 (Approach 2): (parameters, FLOPs, tokens).
CHINCHILLA_TABLE_A3_APPROACH_2 = (
    (400e6, 1.84e19, 7.7e9),
    (1e9, 1.20e20, 20.0e9),
    (10e9, 1.32e22, 219.5e9),
    (67e9, 6.88e23, 1.7e12),
    (175e9, 4.54e24, 4.3e12),
    (280e9, 1.18e25, 7.1e12),
    (520e9, 4.19e25, 13.4e12),
    (1e12, 1.59e26, 26.5e12),
    (10e12, 1.75e28, 292.0e12),
)


def training_flops(params: float, tokens: float) -> float:
    return FLOPS_PER_PARAM_TOKEN * params * tokens


def pf_days(flops: float) -> float:
    return flops / PF_DAY_FLOPS


class Allocation(Protocol):
    """How a law splits compute between parameters and tokens."""

    def optimum(self, flops: float) -> tuple[float, float]: ...

    def tokens_for_params(self, params: float) -> float: ...

    def params_for_tokens(self, tokens: float) -> float: ...


@dataclass(frozen=True)
class PowerLawAllocation:
    """``N_opt = k * C**a`` and ``D_opt = C / (6 N_opt)``."""

    a: float
    k: float

    def optimum(self, flops: float) -> tuple[float, float]:
        params = self.k * flops**self.a
        return params, flops / (FLOPS_PER_PARAM_TOKEN * params)

    def flops_for_params(self, params: float) -> float:
        return (params / self.k) ** (1.0 / self.a)

    def tokens_for_params(self, params: float) -> float:
        return self.flops_for_params(params) / (FLOPS_PER_PARAM_TOKEN * params)

    def params_for_tokens(self, tokens: float) -> float:
        # N = k (6 N D)^a  =>  N^(1-a) = k (6 D)^a
        return (self.k * (FLOPS_PER_PARAM_TOKEN * tokens) ** self.a) ** (1.0 / (1.0 - self.a))


@dataclass(frozen=True)
class ParametricFit:
    """``L(N, D) = E + A / N**alpha + B / D**beta`` and the optimum it implies."""

    E: float
    A: float
    B: float
    alpha: float
    beta: float

    @property
    def a(self) -> float:
        return self.beta / (self.alpha + self.beta)

    @property
    def G(self) -> float:
        return (self.alpha * self.A / (self.beta * self.B)) ** (1.0 / (self.alpha + self.beta))

    def loss(self, params, tokens):
        return (
            self.E + self.A / np.power(params, self.alpha) + self.B / np.power(tokens, self.beta)
        )

    def optimum(self, flops: float) -> tuple[float, float]:
        half = flops / FLOPS_PER_PARAM_TOKEN
        params = self.G * half**self.a
        return params, half / params

    def tokens_for_params(self, params: float) -> float:
        return (params / self.G) ** (1.0 / self.a) / params

    def params_for_tokens(self, tokens):
        # D = (C/6) / N = (C/6)^(1-a) / G, so C/6 = (G D)^(1/(1-a)).
        half = np.power(self.G * np.asarray(tokens, dtype=float), 1.0 / (1.0 - self.a))
        return half / tokens

    def tokens_for_loss(self, params, loss):
        """Tokens ``N`` parameters need to reach ``loss``; ``inf`` where they cannot."""
        room = loss - self.E - self.A / np.power(params, self.alpha)
        reachable = room > 0
        tokens = np.power(self.B / np.where(reachable, room, 1.0), 1.0 / self.beta)
        return np.where(reachable, tokens, np.inf)


@dataclass(frozen=True)
class Law:
    name: str
    title: str
    allocation: Allocation
    fit: ParametricFit
    fit_title: str


CHINCHILLA_FIT = ParametricFit(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
EPOCH_FIT = ParametricFit(E=1.8172, A=482.01, B=2085.43, alpha=0.3478, beta=0.3658)
_EPOCH_TITLE = "Epoch AI refit of Approach 3 (Besiroglu et al. 2024)"

LAWS: dict[str, Law] = {
    law.name: law
    for law in (
        Law(
            "chinchilla-1",
            "Chinchilla Approach 1, training-curve minima (Hoffmann et al. 2022, Table 3)",
            PowerLawAllocation(a=0.4982, k=0.096971),
            EPOCH_FIT,
            _EPOCH_TITLE,
        ),
        Law(
            "chinchilla-2",
            "Chinchilla Approach 2, IsoFLOP profiles (Hoffmann et al. 2022, Table A3)",
            PowerLawAllocation(a=0.48998, k=0.14277),
            EPOCH_FIT,
            _EPOCH_TITLE,
        ),
        Law(
            "chinchilla-3",
            "Chinchilla Approach 3, parametric fit (Hoffmann et al. 2022, Eq. 2)",
            CHINCHILLA_FIT,
            CHINCHILLA_FIT,
            "Chinchilla Approach 3 (Hoffmann et al. 2022)",
        ),
        Law("epoch", _EPOCH_TITLE, EPOCH_FIT, EPOCH_FIT, _EPOCH_TITLE),
    )
}


def effective_tokens(tokens, unique):
    """Fresh-token worth of ``tokens`` drawn from ``unique`` (Muennighoff et al. Eq. 5)."""
    tokens = np.asarray(tokens, dtype=float)
    seen = np.minimum(unique, tokens)
    repeats = tokens / seen - 1.0
    return seen + seen * R_D_STAR * (1.0 - np.exp(-repeats / R_D_STAR))


def effective_params(params, unique_params):
    """Worth of ``params`` when the data support only ``unique_params`` (Eq. 5)."""
    params = np.asarray(params, dtype=float)
    base = np.minimum(unique_params, params)
    excess = params / base - 1.0
    return base + base * R_N_STAR * (1.0 - np.exp(-excess / R_N_STAR))


def constrained_loss(fit: ParametricFit, params, tokens, unique: float | None):
    """Predicted loss with ``unique`` distinct tokens (``None``: unlimited)."""
    if unique is None:
        return fit.loss(params, tokens)
    seen = np.minimum(np.asarray(tokens, dtype=float), unique)
    worth = effective_params(params, fit.params_for_tokens(seen))
    return fit.loss(worth, effective_tokens(tokens, unique))


def _log_grid(low: float, high: float, points: int = 2001) -> np.ndarray:
    return np.logspace(math.log10(low), math.log10(high), points)


def constrained_optimum(fit: ParametricFit, flops: float, unique: float) -> float:
    """Parameters minimising the data-constrained loss at a fixed compute budget."""
    centre, _ = fit.optimum(flops)
    grid = _log_grid(centre / 1e3, centre * 1e2)
    losses = constrained_loss(fit, grid, flops / (FLOPS_PER_PARAM_TOKEN * grid), unique)
    return float(grid[int(np.argmin(losses))])


def tokens_for_loss(fit: ParametricFit, params, loss: float, unique: float | None):
    """Training tokens ``params`` need to reach ``loss``, repeating ``unique`` tokens
    when they run out; ``inf`` where no amount of (repeated) data gets there.

    Within one epoch this is the plain law, exact for models no bigger than
    compute-optimal for those tokens, the only ones :func:`inference_optimum` asks about.
    """
    params = np.asarray(params, dtype=float)
    fresh = fit.tokens_for_loss(params, loss)
    if unique is None:
        return fresh
    worth = effective_params(params, fit.params_for_tokens(unique))
    needed = fit.tokens_for_loss(worth, loss) / unique - 1.0  # extra epochs' fresh worth
    with np.errstate(divide="ignore", invalid="ignore"):
        repeats = -R_D_STAR * np.log1p(-needed / R_D_STAR)
    repeated = np.where((needed > 0) & (needed < R_D_STAR), unique * (1.0 + repeats), np.inf)
    return np.where(fresh <= unique, fresh, repeated)


def inference_optimum(
    fit: ParametricFit,
    loss: float,
    inference_tokens: float,
    max_params: float,
    unique: float | None = None,
) -> tuple[float, float]:
    """``(params, tokens)`` reaching ``loss`` at the least training plus inference FLOPs
    (Sardana and Frankle 2023). Models above ``max_params`` (the compute-optimal one)
    cost more both to train and to serve, so the search stops there."""
    grid = _log_grid(max_params / 1e3, max_params)
    tokens = tokens_for_loss(fit, grid, loss, unique)
    total = grid * (
        FLOPS_PER_PARAM_TOKEN * tokens + INFERENCE_FLOPS_PER_PARAM_TOKEN * inference_tokens
    )
    best = int(np.argmin(total))
    return float(grid[best]), float(tokens[best])
