"""Stop when validation loss stops improving; first lower the rate, if allowed.

An evaluation improves when its loss is below the best so far by more than ``min_delta``.
After ``patience`` evaluations without one, the stopper either asks for a lower learning
rate (:class:`pretrain.schedule.PlateauScale`, while it has reductions left; the count of
bad evaluations starts over) or says stop. The trainer feeds it the all-reduced loss, the
same number on every rank, so every rank takes the same decision at the same step and
none is left waiting in a collective.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from pretrain.schedule import PlateauScale


@dataclass(frozen=True)
class Decision:
    improved: bool
    reduce_lr: bool
    stop: bool


@dataclass
class EarlyStopping:
    patience: int
    min_delta: float = 0.0
    best_loss: float = math.inf
    best_step: int = -1
    bad_evals: int = 0

    def update(self, loss: float, step: int, plateau: PlateauScale | None = None) -> Decision:
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.best_step, self.bad_evals = loss, step, 0
            return Decision(improved=True, reduce_lr=False, stop=False)
        self.bad_evals += 1
        if self.bad_evals < self.patience:
            return Decision(improved=False, reduce_lr=False, stop=False)
        if plateau is not None and plateau.can_reduce():
            plateau.reduce()
            self.bad_evals = 0
            return Decision(improved=False, reduce_lr=True, stop=False)
        return Decision(improved=False, reduce_lr=False, stop=True)

    def state_dict(self) -> dict:
        state = asdict(self)
        # JSON has no infinity; an unevaluated run has no best yet.
        state["best_loss"] = None if math.isinf(self.best_loss) else self.best_loss
        return state

    def load_state_dict(self, state: dict) -> None:
        self.best_loss = math.inf if state["best_loss"] is None else float(state["best_loss"])
        self.best_step, self.bad_evals = int(state["best_step"]), int(state["bad_evals"])
