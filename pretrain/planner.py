"""``dapt plan``: how big a model, on how many tokens, for how long, on which hardware.

:func:`plan` takes any consistent subset of: a compute budget (FLOPs, or accelerator x
count x hours x MFU, or accelerator GPU-hours), the unique tokens available (a number or
the tokenizer stage's ``manifest.json``), a fixed model size, and the tokens the model
will serve. It returns a :class:`Plan`: parameters and tokens from the chosen scaling law
(:mod:`pretrain.scaling`), the shape the pretraining stage builds with its exact
parameter count (:mod:`pretrain.shape`), memory per GPU (:mod:`pretrain.memory`), GPU
hours (:mod:`pretrain.hardware`) and warnings that say what was traded and why.

How the inputs combine:

* budget only: the law's compute-optimal ``(N, D)``;
* budget and unique tokens: the same when the data suffice; otherwise the better of
  repeating the data with the compute-optimal model or a smaller model trained for more
  epochs, by the data-constrained loss (Muennighoff et al. 2023), at equal compute;
* unique tokens only: the compute-optimal model for one epoch of them;
* ``params``: fixes the size; tokens are the budget's (``C / 6N``) or, without a budget,
  the law's compute-optimal tokens for that size;
* ``inference_tokens``: among models that reach the planned loss, the one with the least
  training plus serving FLOPs (Sardana and Frankle 2023), unless ``params`` fixes it.

``plan_from_config`` reads the same inputs from the ``plan:`` section of a pipeline
config, keys as the flags with underscores; unknown keys are an error.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from pretrain import scaling
from pretrain.hardware import ACCELERATORS, PRECISIONS, Accelerator
from pretrain.memory import SHARDINGS, MemoryEstimate, estimate_memory, fit_advice
from pretrain.shape import ModelShape, param_count, shape_for_params

DEFAULT_LAW = "epoch"
#: Assumed model FLOPs utilisation when an accelerator is named without ``mfu``; large
#: dense runs report 0.4 to 0.5 (PaLM: 46.2%, Chowdhery et al. 2022, Table 3).
DEFAULT_MFU = 0.4
DEFAULT_SEQ_LEN = 2048
#: Chinchilla's SentencePiece vocabulary (Hoffmann et al. 2022, Sec. 4.1) when neither
#: the manifest nor the caller gives one.
DEFAULT_VOCAB = 32000
#: Predicted losses closer than this (relative) are a tie: the fits are not that precise,
#: so a tie keeps the compute-optimal model rather than shrinking it.
LOSS_TIE = 1e-3
#: A fixed size further than this factor from the optimum gets a warning.
OFF_OPTIMUM = 2.0
#: The shape search gets within 2% of any reachable target; beyond this it is the
#: vocabulary that keeps the model from being as small as asked.
SHAPE_MISS = 0.1

_SUFFIXES = {"k": 1e3, "m": 1e6, "b": 1e9, "g": 1e9, "t": 1e12}


class PlanError(ValueError):
    """A bad or inconsistent planner input.

    ``template`` has one ``{}`` per field at fault; they render as flags (``--mfu``) or,
    for a config, as keys (``plan.mfu``). ``detail`` follows verbatim.
    """

    def __init__(self, fields, template: str, detail: str = "", style: str = "flag"):
        self.fields = (fields,) if isinstance(fields, str) else tuple(fields)
        self.template, self.detail, self.style = template, detail, style
        super().__init__(str(self))

    def __str__(self) -> str:
        if self.style == "flag":
            names = ["--" + f.replace("_", "-") for f in self.fields]
        else:
            names = [f"plan.{f}" for f in self.fields]
        return self.template.format(*names) + self.detail

    def in_config(self) -> PlanError:
        return PlanError(self.fields, self.template, self.detail, style="config")


def parse_quantity(value, field: str) -> float:
    """A count such as ``2e9``, ``1.3B``, ``400M`` or ``2T`` (also plain numbers)."""
    if isinstance(value, bool):
        raise PlanError(field, "{} must be a number", f", got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip().replace("_", "")
        match = re.fullmatch(r"([0-9.]+(?:[eE][+-]?[0-9]+)?)\s*([kKmMbBgGtT]?)", text)
        if not match:
            raise PlanError(field, "{} must be a number like 2e9 or 1.3B", f", got {value!r}")
        number = float(match.group(1)) * _SUFFIXES.get(match.group(2).lower(), 1.0)
    if not math.isfinite(number) or number <= 0:
        raise PlanError(field, "{} must be positive", f", got {value!r}")
    return number


def _positive_int(value, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise PlanError(field, "{} must be a positive integer", f", got {value!r}")
    return value


def _choice(value: str, field: str, choices) -> str:
    if value not in choices:
        raise PlanError(field, "{} must be one of " + ", ".join(choices), f", got {value!r}")
    return value


def read_tokens_manifest(path: str | Path) -> tuple[int, int | None]:
    """``(train_tokens, vocab_size or None)`` from the tokenizer stage's manifest."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError("tokens_manifest", "{}", f": no such file {path}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PlanError("tokens_manifest", "{}", f": cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise PlanError("tokens_manifest", "{}", f": {path} is not a JSON object")
    train = data.get("train_tokens")
    if isinstance(train, bool) or not isinstance(train, int) or train < 1:
        raise PlanError(
            "tokens_manifest", "{}", f": {path} needs a positive integer train_tokens, "
            f"got {train!r}",
        )
    vocab = data.get("vocab_size")
    if vocab is not None and (isinstance(vocab, bool) or not isinstance(vocab, int) or vocab < 1):
        raise PlanError("tokens_manifest", "{}", f": {path} has a bad vocab_size {vocab!r}")
    return train, vocab


def human(x: float) -> str:
    """``1.43B``, ``905M``: three significant digits and a count suffix."""
    for suffix, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(x) >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def sci(x: float) -> str:
    """``2.74e20``: three significant digits, exponent without ``+`` or leading zeros."""
    return re.sub(r"e\+?(-?)0*(\d)", r"e\1\2", f"{x:.3g}")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _gb(x: float) -> str:
    return f"{x:.1f} GB" if x >= 10 else f"{x:.2f} GB"


def _sig(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else float(f"{x:.{digits}g}")


@dataclass(frozen=True)
class Plan:
    """A planned run. ``params`` and ``tokens`` are the law's (``flops`` = 6 x both);
    ``model`` is the shape the pretraining stage builds, within 2% of ``params`` when the
    vocabulary allows, and ``params_exact`` its count, which memory is computed for."""

    law: str
    params: int
    tokens: int
    predicted_loss: float
    model: ModelShape
    memory: MemoryEstimate
    warnings: tuple[str, ...]
    unique_tokens: int | None = None
    budget_flops: float | None = None
    accelerator: Accelerator | None = None
    gpus: int = 1
    mfu: float | None = None
    inference_tokens: float | None = None

    @property
    def flops(self) -> float:
        return scaling.training_flops(self.params, self.tokens)

    @property
    def pf_days(self) -> float:
        return scaling.pf_days(self.flops)

    @property
    def tokens_per_param(self) -> float:
        return self.tokens / self.params

    @property
    def params_exact(self) -> int:
        return param_count(self.model)

    @property
    def epochs(self) -> float | None:
        return None if self.unique_tokens is None else self.tokens / self.unique_tokens

    @property
    def effective_tokens(self) -> int:
        if self.unique_tokens is None:
            return self.tokens
        return round(float(scaling.effective_tokens(self.tokens, self.unique_tokens)))

    @property
    def gpu_hours(self) -> float | None:
        if self.accelerator is None:
            return None
        rate = self.accelerator.peak_flops(self.memory.precision) * self.mfu
        return self.flops / rate / 3600

    @property
    def wall_hours(self) -> float | None:
        return None if self.gpu_hours is None else self.gpu_hours / self.gpus

    def to_json(self) -> dict:
        accel = self.accelerator
        return {
            "params": self.params,
            "tokens": self.tokens,
            "tokens_per_param": round(self.tokens_per_param, 2),
            "flops": _sig(self.flops),
            "pf_days": _sig(self.pf_days, 4),
            "gpu_hours": _sig(self.gpu_hours, 4),
            "epochs": _sig(self.epochs, 4),
            "effective_tokens": self.effective_tokens,
            "predicted_loss": round(self.predicted_loss, 4),
            "law": self.law,
            "model": {
                **self.model.to_dict(),
                "head_dim": self.model.head_dim,
                "params_exact": self.params_exact,
            },
            "memory": self.memory.to_json(),
            "warnings": list(self.warnings),
            "unique_tokens": self.unique_tokens,
            "budget_flops": _sig(self.budget_flops),
            "inference_tokens": self.inference_tokens,
            "hardware": {
                "gpu": accel.key if accel else None,
                "name": accel.name if accel else None,
                "gpus": self.gpus,
                "mfu": self.mfu,
                "peak_tflops_per_gpu": (
                    accel.peak_flops(self.memory.precision) / 1e12 if accel else None
                ),
                "memory_gb_per_gpu": accel.memory_gb if accel else None,
                "wall_hours": _sig(self.wall_hours, 4),
            },
        }

    def to_table(self) -> str:
        """The plan as aligned plain text: inputs, plan, model, memory, warnings."""
        law = scaling.LAWS[self.law]
        rows: list[tuple[str, str, str]] = []
        if self.budget_flops is not None:
            budget_days = scaling.pf_days(self.budget_flops)
            rows.append(("compute budget", sci(self.budget_flops), f"{budget_days:.3g} PF-days"))
        if self.unique_tokens is not None:
            rows.append(("unique tokens", human(self.unique_tokens), ""))
        if self.inference_tokens is not None:
            rows.append(("tokens to serve", human(self.inference_tokens), ""))
        if rows:
            rows.append(("", "", ""))
        loss_note = "nats/token" + ("" if law.fit is law.allocation else f", {law.fit_title}")
        rows += [
            ("parameters", human(self.params), f"the model has {self.params_exact:,}"),
            ("training tokens", human(self.tokens), self._epochs_note()),
            ("tokens / parameter", f"{self.tokens_per_param:.1f}", ""),
            ("training FLOPs", sci(self.flops), f"{self.pf_days:.3g} PF-days"),
            *self._hardware_rows(),
            ("predicted loss", f"{self.predicted_loss:.3f}", loss_note),
        ]
        m, mem = self.model, self.memory
        embeddings = "tied" if m.tie_embeddings else "untied"
        shard = f"fsdp over {mem.shards} GPUs" if mem.sharding == "fsdp" else "no sharding"
        rows += [
            ("", "", ""),
            ("model", _count(m.n_layer, "layer"),
             f"d_model {m.d_model}, {_count(m.n_head, 'head')} of {m.head_dim}"),
            ("", f"{m.ffn_hidden} ffn", f"SwiGLU; vocab {m.vocab_size}, {embeddings} embeddings"),
            ("", f"{m.seq_len} seq", "tokens per sequence, rotary positions"),
            ("", "", ""),
            ("memory per GPU", "", f"{mem.precision}, {shard}"),
            ("  weights", _gb(mem.weights_gb), ""),
            ("  gradients", _gb(mem.gradients_gb), ""),
            ("  optimizer", _gb(mem.optimizer_gb), "Adam"),
            ("  activations", _gb(mem.activations_gb), mem.activations_from),
            ("  total", _gb(mem.total_gb_per_gpu), self._fit_note()),
        ]
        label_width = max(len(r[0]) for r in rows)
        value_width = max(len(r[1]) for r in rows)
        lines = [f"dapt plan: {law.title}", ""]
        for label, value, note in rows:
            if label or value or note:
                lines.append(f"  {label:<{label_width}}  {value:>{value_width}}  {note}".rstrip())
            else:
                lines.append("")
        if self.warnings:
            lines += ["", "warnings:"]
            lines += [f"  - {w}" for w in self.warnings]
        return "\n".join(lines)

    def _hardware_rows(self) -> list[tuple[str, str, str]]:
        if self.accelerator is None:
            return []
        peak = self.accelerator.peak_flops(self.memory.precision) / 1e12
        return [
            ("GPU-hours", f"{self.gpu_hours:,.0f}",
             f"{self.wall_hours:,.1f} h on {self.gpus} x {self.accelerator.name}"),
            ("", "", f"{self.memory.precision} at {peak:g} TFLOP/s peak, MFU {self.mfu:g}"),
        ]

    def _epochs_note(self) -> str:
        if self.epochs is None:
            return "unique tokens unknown"
        return f"{self.epochs:.2f} epochs, worth {human(self.effective_tokens)} fresh tokens"

    def _fit_note(self) -> str:
        if self.accelerator is None:
            return ""
        fits = fit_advice(self.memory, self.accelerator.memory_gb, self.gpus) is None
        return f"of {self.accelerator.memory_gb:g} GB: {'fits' if fits else 'does not fit'}"


def _budget(flops, accel, gpus, hours, gpu_hours, mfu, precision) -> float | None:
    sources = (("flops", flops), ("hours", hours), ("gpu_hours", gpu_hours))
    given = [field for field, value in sources if value is not None]
    if len(given) > 1:
        raise PlanError(
            given, " and ".join(["{}"] * len(given)) + " each set the compute budget; give one"
        )
    if flops is not None:
        return parse_quantity(flops, "flops")
    if not given:
        return None
    if accel is None:
        raise PlanError((given[0], "gpu"), "{} needs {} to turn hours into FLOPs")
    if hours is not None:
        if gpus is None:
            raise PlanError(("hours", "gpus"), "{} needs {}; or give --gpu-hours")
        gpu_hours = parse_quantity(hours, "hours") * gpus
    else:
        gpu_hours = parse_quantity(gpu_hours, "gpu_hours")
    return gpu_hours * 3600 * accel.peak_flops(precision) * mfu


def _data_constrained(fit, budget, unique, n_opt, d_opt):
    """``(params, tokens, warning)`` when the compute-optimal run wants more than the
    unique tokens: repeat them with the compute-optimal model, or train the smaller model
    that minimises the data-constrained loss for more epochs, whichever predicts the lower
    loss (a tie keeps the compute-optimal model)."""
    n_small = scaling.constrained_optimum(fit, budget, unique)
    epochs = d_opt / unique
    worth = float(scaling.effective_tokens(d_opt, unique))
    repeat_loss = float(scaling.constrained_loss(fit, n_opt, d_opt, unique))
    fresh_loss = float(fit.loss(n_opt, d_opt))
    d_small = budget / (scaling.FLOPS_PER_PARAM_TOKEN * n_small)
    small_loss = float(scaling.constrained_loss(fit, n_small, d_small, unique))
    head = (
        f"data-constrained: the compute-optimal {human(n_opt)} model wants {human(d_opt)} tokens, "
        f"{epochs:.1f} epochs of the {human(unique)} unique; repeated that often they are worth "
        f"{human(worth)} fresh tokens (Muennighoff et al. 2023), predicted loss {repeat_loss:.3f} "
        f"against {fresh_loss:.3f} with new data."
    )
    if n_small < n_opt and small_loss < repeat_loss * (1 - LOSS_TIE):
        return n_small, d_small, (
            f"{head} A smaller {human(n_small)} model for {d_small / unique:.1f} epochs predicts "
            f"{small_loss:.3f} on the same budget, because parameters beyond what the data "
            "support lose value faster than repeated tokens: planned the smaller model."
        )
    why = (
        f"up to ~{scaling.NEARLY_FRESH_EPOCHS:g} epochs repeated data is nearly as good as new"
        if epochs <= scaling.NEARLY_FRESH_EPOCHS
        else "a smaller model would predict no lower loss"
    )
    return n_opt, d_opt, f"{head} Planned repeating the data ({why})."


def _inference_note(loss, serve, n, d, n_inf, d_inf, budget):
    train_old = scaling.training_flops(n, d)
    train_new = scaling.training_flops(n_inf, d_inf)
    cost = scaling.INFERENCE_FLOPS_PER_PARAM_TOKEN * serve
    total_old, total_new = train_old + cost * n, train_new + cost * n_inf
    note = (
        f"inference-aware ({human(serve)} tokens served, Sardana and Frankle 2023): a "
        f"{human(n_inf)} model on {human(d_inf)} tokens reaches the same predicted loss "
        f"{loss:.3f} as the {human(n)} one; training takes {train_new / train_old:.1f}x the FLOPs "
        f"but training plus serving falls from {sci(total_old)} to {sci(total_new)} FLOPs "
        f"({1 - total_new / total_old:.0%} less)"
    )
    if budget is not None and train_new > budget * (1 + LOSS_TIE):
        note += f"; training exceeds the {sci(budget)} FLOPs budget"
    return note + "."


def _hardware(gpu, precision, mfu) -> tuple[Accelerator | None, str, float | None]:
    accel = None
    if gpu is not None:
        accel = ACCELERATORS[_choice(str(gpu).lower(), "gpu", tuple(ACCELERATORS))]
    if precision is None:
        precision = accel.default_precision() if accel else "bf16-mixed"
    _choice(precision, "precision", tuple(PRECISIONS))
    if accel and not accel.supports(precision):
        usable = ", ".join(p for p in PRECISIONS if accel.supports(p))
        raise PlanError(
            ("precision", "gpu"),
            "{} " + precision + " is not available on {} " + accel.key,
            f" ({accel.name}); use one of {usable}",
        )
    if mfu is not None:
        if accel is None:
            raise PlanError(("mfu", "gpu"), "{} needs {}")
        if not 0 < mfu <= 1:
            raise PlanError("mfu", "{} must be in (0, 1]", f", got {mfu!r}")
    elif accel is not None:
        mfu = DEFAULT_MFU
    return accel, precision, mfu


def _data(unique_tokens, tokens_manifest, vocab_size) -> tuple[float | None, int]:
    """Unique tokens (or ``None``) and the vocabulary size."""
    if unique_tokens is not None and tokens_manifest is not None:
        raise PlanError(("unique_tokens", "tokens_manifest"), "give {} or {}, not both")
    unique, manifest_vocab = None, None
    if unique_tokens is not None:
        unique = parse_quantity(unique_tokens, "unique_tokens")
    elif tokens_manifest is not None:
        unique, manifest_vocab = read_tokens_manifest(tokens_manifest)
    if vocab_size is not None:
        vocab_size = _positive_int(vocab_size, "vocab_size")
        if manifest_vocab is not None and manifest_vocab != vocab_size:
            raise PlanError(
                ("vocab_size", "tokens_manifest"),
                "{} " + str(vocab_size) + " differs from the vocab_size "
                + str(manifest_vocab) + " in {}",
            )
    return unique, vocab_size or manifest_vocab or DEFAULT_VOCAB


def _fixed_size(law, n, budget, optimum, unique, warnings) -> float:
    """Tokens for a model whose size the caller fixed, and what that costs."""
    fit, alloc = law.fit, law.allocation
    if budget is not None:
        d = budget / (scaling.FLOPS_PER_PARAM_TOKEN * n)
    else:
        d = alloc.tokens_for_params(n)
    if optimum and not 1 / OFF_OPTIMUM <= n / optimum[0] <= OFF_OPTIMUM:
        best = float(scaling.constrained_loss(fit, *optimum, unique))
        here = float(scaling.constrained_loss(fit, n, d, unique))
        warnings.append(
            f"--params {human(n)} is {n / optimum[0]:.2g}x the compute-optimal "
            f"{human(optimum[0])} for this budget ({d / n:.1f} tokens/parameter); predicted "
            f"loss {here:.3f} against {best:.3f}."
        )
    if unique is not None and d > unique:
        worth = float(scaling.effective_tokens(d, unique))
        note = (
            f"data-constrained: {human(d)} training tokens are {d / unique:.1f} epochs of "
            f"the {human(unique)} unique, worth {human(worth)} fresh tokens "
            "(Muennighoff et al. 2023)"
        )
        if budget is not None:
            smaller = scaling.constrained_optimum(fit, budget, unique)
            note += f"; the data-constrained optimum for this budget is {human(smaller)}"
        else:
            few = scaling.NEARLY_FRESH_EPOCHS
            note += (
                f"; the compute-optimal size for one epoch is "
                f"{human(alloc.params_for_tokens(unique))}, for {few:g} epochs "
                f"{human(alloc.params_for_tokens(few * unique))}"
            )
        warnings.append(note + ".")
    return d


def _for_serving(fit, n, d, loss, serve, unique, budget, fixed, warnings):
    """``(params, tokens)`` once serving ``serve`` tokens is priced in."""
    if fixed:
        per_token = scaling.INFERENCE_FLOPS_PER_PARAM_TOKEN * serve
        share = per_token / (per_token + scaling.FLOPS_PER_PARAM_TOKEN * d)
        warnings.append(
            f"--params fixes the size, so --inference-tokens only adds serving cost: "
            f"{share:.0%} of lifetime FLOPs."
        )
        return n, d
    n_inf, d_inf = scaling.inference_optimum(fit, loss, serve, n, unique)
    if n_inf < n * (1 - LOSS_TIE) and math.isfinite(d_inf):
        warnings.append(_inference_note(loss, serve, n, d, n_inf, d_inf, budget))
        return n_inf, d_inf
    return n, d


def plan(
    *,
    flops=None,
    gpu: str | None = None,
    gpus: int | None = None,
    hours=None,
    gpu_hours=None,
    mfu: float | None = None,
    unique_tokens=None,
    tokens_manifest: str | Path | None = None,
    params=None,
    vocab_size: int | None = None,
    precision: str | None = None,
    sharding: str = "none",
    seq_len: int = DEFAULT_SEQ_LEN,
    micro_batch: int | None = None,
    inference_tokens=None,
    law: str = DEFAULT_LAW,
) -> Plan:
    """Plan a pretraining run; raises :class:`PlanError` naming the input at fault."""
    law_spec = scaling.LAWS[_choice(law, "law", tuple(scaling.LAWS))]
    fit = law_spec.fit
    _choice(sharding, "sharding", SHARDINGS)
    seq_len = _positive_int(seq_len, "seq_len")
    if micro_batch is not None:
        micro_batch = _positive_int(micro_batch, "micro_batch")
    if gpus is not None:
        gpus = _positive_int(gpus, "gpus")
    accel, precision, mfu = _hardware(gpu, precision, mfu)
    budget = _budget(flops, accel, gpus, hours, gpu_hours, mfu, precision)
    unique, vocab = _data(unique_tokens, tokens_manifest, vocab_size)
    if params is not None:
        params = parse_quantity(params, "params")
    serve = None
    if inference_tokens is not None:
        serve = parse_quantity(inference_tokens, "inference_tokens")
    if budget is None and params is None and unique is None:
        raise PlanError(
            ("flops", "gpu", "params", "unique_tokens", "tokens_manifest"),
            "nothing to plan from: give a compute budget ({}, or {} with --gpus and --hours), "
            "{}, or the data ({} or {})",
        )

    warnings: list[str] = []
    optimum = law_spec.allocation.optimum(budget) if budget is not None else None
    if params is not None:
        n = params
        d = _fixed_size(law_spec, n, budget, optimum, unique, warnings)
    elif budget is not None:
        n, d = optimum
        if unique is not None and d > unique:
            n, d, note = _data_constrained(fit, budget, unique, n, d)
            warnings.append(note)
    else:
        n, d = float(law_spec.allocation.params_for_tokens(unique)), unique
    if serve is not None:
        loss = float(scaling.constrained_loss(fit, n, d, unique))
        n, d = _for_serving(fit, n, d, loss, serve, unique, budget, params is not None, warnings)
    if unique is not None and d / unique > scaling.R_D_STAR:
        warnings.append(
            f"{d / unique:.0f} epochs: past R_D* ~= {scaling.R_D_STAR:g} repetitions each epoch "
            "adds little; more unique tokens would lower the loss more than more compute."
        )

    if round(n) < 1 or round(d) < 1:
        given = f"a budget of {budget:.3g} FLOPs" if budget is not None else "the inputs"
        raise PlanError((), f"{given}: {n:.3g} parameters and {d:.3g} tokens, too small for any model")
    model = shape_for_params(n, vocab, seq_len)
    exact = param_count(model)
    if exact > n * (1 + SHAPE_MISS):
        warnings.append(
            f"the smallest model with a {vocab}-token vocabulary has {human(exact)} parameters, "
            f"{exact / n:.1f}x the {human(n)} planned: the embeddings dominate."
        )
    memory = estimate_memory(exact, precision, sharding, gpus or 1, model, micro_batch)
    if accel is not None:
        advice = fit_advice(memory, accel.memory_gb, gpus or 1)
        if advice:
            warnings.append(f"memory: {advice} ({accel.name}).")

    return Plan(
        law=law,
        params=round(n),
        tokens=round(d),
        predicted_loss=float(scaling.constrained_loss(fit, n, d, unique)),
        model=model,
        memory=memory,
        warnings=tuple(warnings),
        unique_tokens=None if unique is None else round(unique),
        budget_flops=budget,
        accelerator=accel,
        gpus=gpus or 1,
        mfu=mfu,
        inference_tokens=serve,
    )


_Quantity = float | str | None


class PlanConfig(BaseModel):
    """The ``plan:`` section of a pipeline config: the flags, with underscores."""

    model_config = ConfigDict(extra="forbid")

    flops: _Quantity = None
    gpu: str | None = None
    gpus: int | None = None
    hours: float | None = None
    gpu_hours: float | None = None
    mfu: float | None = None
    unique_tokens: _Quantity = None
    tokens_manifest: str | None = None
    params: _Quantity = None
    vocab_size: int | None = None
    precision: str | None = None
    sharding: str = "none"
    seq_len: int = DEFAULT_SEQ_LEN
    micro_batch: int | None = None
    inference_tokens: _Quantity = None
    law: str = DEFAULT_LAW


def _one_line(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(["plan", *(str(p) for p in err["loc"])])
        if err["type"] == "extra_forbidden":
            parts.append(f"{where}: unknown key")
        else:
            parts.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
    return "; ".join(parts)


def read_plan_section(path: str | Path) -> dict:
    """The ``plan:`` section of a pipeline config file (YAML)."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError("config", "{}", f": no such file {path}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        message = " ".join(str(exc).split())
        raise PlanError("config", "{}", f": cannot read {path}: {message}") from None
    section = data.get("plan") if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise PlanError("config", "{}", f": {path} has no plan: mapping")
    manifest = section.get("tokens_manifest")
    if isinstance(manifest, str) and not Path(manifest).is_absolute():
        # Paths in a pipeline config are relative to the config file, as corpus paths are.
        section = {**section, "tokens_manifest": str(Path(path).parent / manifest)}
    return section


def plan_from_config(section: dict | None, **overrides) -> Plan:
    """Plan from a config's ``plan:`` section; ``overrides`` (e.g. command-line flags)
    replace its keys. Errors name the config key."""
    try:
        config = PlanConfig.model_validate({**(section or {}), **overrides})
    except ValidationError as exc:
        raise PlanError((), _one_line(exc).replace("{", "{{").replace("}", "}}")) from None
    try:
        return plan(**config.model_dump())
    except PlanError as exc:
        raise exc.in_config() from None
