"""The plan as a picture: the loss landscape over model size for its compute, and where
the plan sits among Chinchilla's compute-optimal models.

Left: isoFLOP curves (Hoffmann et al. 2022, Fig. 3) for the budget and, when they
differ, for the plan's FLOPs: the predicted loss of every model size trained on the
tokens those FLOPs buy, with fresh data and, when the unique tokens are known, with
repeated data (Muennighoff et al. 2023); dots mark the optimum with fresh data, a star
the plan. Right: the law's
compute-optimal size against compute, with the nine projections of Chinchilla's Table 3
for reference and the plan on top.

matplotlib is imported here, not by the planner, so ``dapt plan`` without ``--plot``
stays fast; the figure is drawn on an Agg canvas and never opens a window.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pretrain import scaling
from pretrain.planner import Plan, human, sci


def plot_plan(plan: Plan, path: str | Path) -> Path:
    """Write the plan's figure to ``path`` (format from the suffix, e.g. ``.png``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    law = scaling.LAWS[plan.law]
    fit = law.fit
    fig = Figure(figsize=(12, 5), layout="constrained")
    FigureCanvasAgg(fig)
    left, right = fig.subplots(1, 2)

    curves = [plan.flops]
    if plan.budget_flops is not None and abs(plan.budget_flops / plan.flops - 1) > 1e-3:
        curves.insert(0, plan.budget_flops)
    for flops, color in zip(curves, ("tab:blue", "tab:purple")):
        centre, _ = fit.optimum(flops)
        sizes = np.logspace(np.log10(centre) - 2, np.log10(centre) + 1.5, 400)
        tokens = flops / (scaling.FLOPS_PER_PARAM_TOKEN * sizes)
        left.plot(sizes, fit.loss(sizes, tokens), color=color, label=f"{sci(flops)} FLOPs")
        if plan.unique_tokens is not None:
            repeated = scaling.constrained_loss(fit, sizes, tokens, plan.unique_tokens)
            left.plot(
                sizes, repeated, color=color, linestyle="--",
                label=f"{sci(flops)} FLOPs, {human(plan.unique_tokens)} unique tokens repeated",
            )
        best = fit.loss(centre, flops / (scaling.FLOPS_PER_PARAM_TOKEN * centre))
        left.scatter([centre], [best], color=color, zorder=3)
    left.scatter(
        [plan.params], [plan.predicted_loss], marker="*", s=220, color="tab:red", zorder=4,
        label=f"plan: {human(plan.params)}, loss {plan.predicted_loss:.3f}",
    )
    left.set_xscale("log")
    left.set_xlabel("parameters")
    left.set_ylabel(f"predicted loss (nats/token), {plan.law}")
    left.set_title("isoFLOP curves (dots: optimum with fresh data)")
    left.grid(True, which="both", alpha=0.3)
    left.legend()

    budgets = np.logspace(17, 29, 200)
    optimal = np.array([law.allocation.optimum(c)[0] for c in budgets])
    right.plot(budgets, optimal, color="tab:green", label=f"compute-optimal size, {plan.law}")
    table = np.array(scaling.CHINCHILLA_TABLE_3)
    right.scatter(
        table[:, 1], table[:, 0], marker="s", facecolors="none", edgecolors="black",
        label="Chinchilla Table 3 (Approach 1)",
    )
    right.scatter(
        [plan.flops], [plan.params], marker="*", s=220, color="tab:red", zorder=4, label="plan"
    )
    right.set_xscale("log")
    right.set_yscale("log")
    right.set_xlabel("training FLOPs")
    right.set_ylabel("parameters")
    right.set_title("compute-optimal model size")
    right.grid(True, which="both", alpha=0.3)
    right.legend()

    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
