"""Learning rate over training: linear warmup, cosine decay, and a plateau multiplier.

Warmup then cosine decay to ``min_lr`` follows Loshchilov & Hutter 2017 (SGDR) as used
by GPT-3 (Brown et al. 2020, App. B: decay to 10 % of the peak) and Chinchilla, which
found the cosine cycle should end where training ends (Hoffmann et al. 2022, Sec. 3.1):
the decay horizon is the planned step count, not ``max_steps``.

BloombergGPT lowered the learning rate by hand when validation loss stalled (Wu et al.
2023, Sec. 3.3: "we reduced the learning rate ... after the validation loss plateaued").
:class:`PlateauScale` does that automatically: a factor on top of the cosine, cut by
``factor`` when the early stopper reports a plateau. The rate is a pure function of the
step and that factor, so a resumed run recomputes it exactly from its checkpoint.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


def cosine_lr(step: int, peak: float, minimum: float, warmup: int, horizon: int) -> float:
    """Rate for optimizer step ``step`` (0-based): linear warmup over ``warmup`` steps, then
    cosine from ``peak`` to ``minimum`` at ``horizon``, then ``minimum``."""
    if step < warmup:
        return peak * (step + 1) / warmup
    if step >= horizon:
        return minimum
    progress = (step - warmup) / max(1, horizon - warmup)
    return minimum + 0.5 * (peak - minimum) * (1 + math.cos(math.pi * progress))


@dataclass
class PlateauScale:
    """Multiplier on the scheduled rate, reduced on a validation plateau."""

    factor: float = 0.5
    max_reductions: int = 0
    scale: float = 1.0
    reductions: int = 0

    def can_reduce(self) -> bool:
        return self.reductions < self.max_reductions

    def reduce(self) -> None:
        self.scale *= self.factor
        self.reductions += 1

    def state_dict(self) -> dict:
        return asdict(self)

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.reductions = float(state["scale"]), int(state["reductions"])
