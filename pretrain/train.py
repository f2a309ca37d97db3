"""The training loop: one plain function, the same for 1 process, DDP, FSDP, CPU or GPU.

Run it with ``dapt train`` (which starts torchrun itself with ``--nproc-per-node N``) or
``torchrun ... -m pretrain.train ARGS`` (the same arguments as ``dapt train``).

Inputs are files: the token directory of ``dapt tokenize``, the tokenizer bundle (its
sha256 must be the one the tokens were made with) and a model shape, from the planner's
``PLAN.json`` or given directly. Outputs go to ``RUNDIR``:

=====================  ==============================================================
``config.json``        the validated :class:`TrainConfig` of the run
``metrics.jsonl``      one JSON line per step (``loss``, ``lr``, ``grad_norm``,
                       ``tokens_per_s``, ...) and per evaluation (``val_loss``,
                       ``lr_scale``); each step once, also after a resume
``checkpoints/``       :mod:`pretrain.checkpoint` (last ``keep_last`` steps and ``best``)
``tokenizer/``         a copy of the bundle, so the run directory is self-contained
``loss.png``           train and validation loss against tokens
``summary.json``       ``stop_reason`` (``early_stopping``, ``budget``, ``max_steps``),
                       ``best_step``, ``best_val_loss``, ``steps``, ``tokens_seen``,
                       ``mlflow_run_id``, and the throughput
=====================  ==============================================================

A run directory that already holds a checkpoint is resumed from its latest one: same
weights, optimizer moments, learning-rate state, data position and RNG, so the loss
sequence and final weights are those of an uninterrupted run (checked bitwise on CPU).
The steps after that checkpoint are trained again, so their records are first dropped
from ``metrics.jsonl``, and MLflow is sent only what its run does not hold yet
(:mod:`pretrain.tracking`).

:func:`train` is also called in a long-lived process (``dapt run`` trains one process in
its own interpreter): it leaves no process group, thread or MLflow client setting behind,
so it can be called again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

#: A fault-injection hook for the kill-and-resume test: every rank SIGKILLs itself right
#: after this optimizer step, as a preempted node would die, with no cleanup.
FAULT_ENV = "DAPT_FAULT_KILL_AT_STEP"


class ModelFlags(BaseModel):
    """A shape given by hand instead of a plan (the vocabulary comes from the tokens)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    n_layer: int = Field(ge=1)
    d_model: int = Field(ge=2)
    n_head: int = Field(ge=1)
    seq_len: int = Field(ge=2)
    ffn_hidden: int | None = Field(None, ge=1, description="default: Llama's 8/3 d_model rounded to 256")
    tie_embeddings: bool = False


class TrainConfig(BaseModel):
    """Everything a run depends on; ``extra="forbid"``, so a misspelt key is an error."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens: str
    tokenizer: str
    output: str
    plan: str | None = None
    model: ModelFlags | None = None

    micro_batch: int = Field(8, ge=1, description="sequences per process per forward")
    global_batch: int | None = Field(None, ge=1, description="sequences per optimizer step; default micro_batch x processes")
    lr: float = Field(3e-4, gt=0)
    min_lr_ratio: float = Field(0.1, ge=0, le=1)
    warmup_steps: int = Field(100, ge=0)
    weight_decay: float = Field(0.1, ge=0)
    grad_clip: float = Field(1.0, ge=0, description="0 turns clipping off")
    max_steps: int | None = Field(None, ge=1)
    token_budget: int | None = Field(None, ge=1, description="default: the plan's tokens")

    eval_every: int = Field(100, ge=1)
    eval_sequences: int = Field(256, ge=1, description="validation windows per evaluation, all ranks together")
    patience: int = Field(5, ge=1, description="evaluations without improvement before stopping")
    min_delta: float = Field(0.0, ge=0)
    lr_reductions: int = Field(0, ge=0, description="times the rate is cut on a plateau before stopping")
    lr_reduce_factor: float = Field(0.5, gt=0, lt=1)

    checkpoint_every: int = Field(100, ge=1)
    keep_last: int = Field(2, ge=1)
    log_every: int = Field(10, ge=1)
    seed: int = 0

    parallelism: Literal["ddp", "fsdp"] = "ddp"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    activation_checkpointing: bool = False
    compile: bool = False
    gpu: str | None = Field(None, description="accelerator key for MFU (default: the plan's, else detected)")

    mlflow: bool = True
    mlflow_run_id: str | None = Field(
        None, description="log into this existing MLflow run (dapt run creates it as a child of the pipeline run)"
    )
    tracking_uri: str | None = Field(None, description="default: MLFLOW_TRACKING_URI, else sqlite:///mlflow.db")
    experiment: str = "dapt"
    register_as: str | None = Field("dapt", description="Model Registry name; an empty string skips registration")
    system_metrics_every: float = Field(10.0, gt=0, description="seconds between MLflow system-metric samples")

    @model_validator(mode="after")
    def _one_shape(self) -> TrainConfig:
        if (self.plan is None) == (self.model is None):
            raise ValueError("give exactly one of plan (PLAN.json) or model (n_layer, d_model, n_head, seq_len)")
        return self


class TrainError(Exception):
    """A problem that stops the run before or during training, as one line."""


def parse_config(data: dict) -> TrainConfig:
    from pipelines.config import describe_errors

    try:
        return TrainConfig.model_validate(data)
    except ValidationError as err:
        raise TrainError(describe_errors(err).replace("\n", "; ")) from None


def resolve_shape(config: TrainConfig, vocab_size: int):
    """The model shape: the plan's (its vocabulary must be the tokens'), or the flags'."""
    from pretrain.shape import ModelShape, ffn_hidden_for

    if config.plan:
        try:
            plan = json.loads(Path(config.plan).read_text(encoding="utf-8"))
            shape = ModelShape.from_dict(plan["model"])
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise TrainError(f"{config.plan}: not a usable PLAN.json ({exc})") from None
        if shape.vocab_size != vocab_size:
            raise TrainError(
                f"{config.plan}: the plan's vocab_size {shape.vocab_size} differs from the tokens' {vocab_size}; "
                "re-plan with --tokens-manifest"
            )
        return shape, plan
    m = config.model
    try:
        shape = ModelShape(
            n_layer=m.n_layer, d_model=m.d_model, n_head=m.n_head, vocab_size=vocab_size, seq_len=m.seq_len,
            ffn_hidden=m.ffn_hidden or ffn_hidden_for(m.d_model), tie_embeddings=m.tie_embeddings,
        )
    except ValueError as exc:
        raise TrainError(str(exc)) from None
    return shape, None


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _precision(config: TrainConfig, device) -> str:
    if config.precision == "auto":
        return "bf16" if device.type == "cuda" else "fp32"
    return config.precision


def _peak_flops(config: TrainConfig, plan: dict | None, device, precision: str) -> float | None:
    """Dense peak of one device from the planner's table, or None (CPU, unknown GPU)."""
    from pretrain.hardware import ACCELERATORS

    key = config.gpu or (plan or {}).get("hardware", {}).get("gpu")
    if key is None and device.type == "cuda":
        import torch

        name = torch.cuda.get_device_name(device).lower()  # e.g. "nvidia h100 80gb hbm3"
        key = next((k for k in ("h200", "h100", "a100", "v100") if k in name), None)
        if key == "h100" and "pcie" in name:
            key = "h100-pcie"
        elif key == "a100" and "40gb" in name:
            key = "a100-40gb"
    if key not in ACCELERATORS:
        return None
    table = {"fp32": "tf32", "bf16": "bf16-mixed", "fp16": "fp16-mixed"}
    accel = ACCELERATORS[key]
    return accel.peak_flops(table[precision]) if accel.supports(table[precision]) else None


def _append_jsonl(path: Path, record: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def metrics_through(path: Path, step: int) -> list[str]:
    """The lines of ``metrics.jsonl`` up to ``step``, the resumed checkpoint's, after
    rewriting the file to hold just those (via a temporary file and ``os.replace``, so a
    kill leaves the old file or the new one); a line cut short by a kill goes too.
    Records are appended in step order, so only the lines after ``step`` are parsed."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    keep = len(lines)
    while keep:
        try:
            if json.loads(lines[keep - 1])["step"] <= step:
                break
        except (json.JSONDecodeError, KeyError, TypeError):
            pass
        keep -= 1
    # A last line without its newline would run into the next record appended.
    if keep < len(lines) or not text.endswith("\n"):
        staging = path.with_name(path.name + ".tmp")
        staging.write_text("".join(line + "\n" for line in lines[:keep]), encoding="utf-8")
        os.replace(staging, path)
    return lines[:keep]


def _newest_first(lines: list[str]):
    """``(tracked metrics, step)`` of ``metrics.jsonl`` lines, parsed from the last one
    back as far as the reader goes."""
    for line in reversed(lines):
        try:
            record = json.loads(line)
            yield tracked_metrics(record), record["step"]
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError):
            continue


def tracked_metrics(record: dict) -> dict:
    """What MLflow gets of a ``metrics.jsonl`` record: all but its step, and for an
    evaluation all but ``tokens``, which the training record of that step has."""
    drop = ("step", "tokens") if "val_loss" in record else ("step",)
    return {k: v for k, v in record.items() if k not in drop}


def _format_eta(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def train(config: TrainConfig) -> dict:
    """Run (or resume) training; every process of the job calls this. Returns the summary.

    Joins torchrun's process group (or makes a one-process one) and destroys it at the
    end, a one-process group also when training fails; a group the caller made
    beforehand is used and left."""
    import torch.distributed as dist

    from pretrain.parallelize import setup_distributed, teardown_distributed

    owned = not dist.is_initialized()
    rank, world, device = setup_distributed()
    opened: list = []  # the Tracker _train starts, stopped here when training fails
    try:
        summary = _train(config, rank, world, device, opened)
    except BaseException:
        for tracker in opened:
            tracker.abort()
        # A failed rank's peers may be inside a collective that destroying the group would
        # wait on; a torchrun worker exits next anyway, so only a one-process group goes.
        if owned and world == 1:
            teardown_distributed()
        raise
    if owned:
        teardown_distributed()
    return summary


def _train(config: TrainConfig, rank: int, world: int, device, opened: list) -> dict:
    import torch
    import torch.distributed as dist

    from pretrain import checkpoint as ckpt
    from pretrain.data import TrainBatches, ValWindows, check_tokenizer, load_manifest
    from pretrain.early_stopping import EarlyStopping
    from pretrain.model import GPT, causal_lm_loss, flops_per_token
    from pretrain.parallelize import parallelize
    from pretrain.schedule import PlateauScale, cosine_lr
    from pretrain.shape import param_count
    from tokenizer.bundle import load_tokenizer

    out = Path(config.output)
    ckpt_root = out / "checkpoints"
    manifest = load_manifest(config.tokens)
    tokenizer = load_tokenizer(config.tokenizer)
    check_tokenizer(manifest, tokenizer.sha256)
    shape, plan = resolve_shape(config, manifest.vocab_size)

    global_batch = config.global_batch or config.micro_batch * world
    if global_batch % (config.micro_batch * world):
        raise TrainError(
            f"global_batch {global_batch} is not a multiple of micro_batch {config.micro_batch} x {world} processes"
        )
    accum = global_batch // (config.micro_batch * world)
    tokens_per_step = global_batch * shape.seq_len
    budget = config.token_budget or (plan or {}).get("tokens")
    budget_steps = math.ceil(budget / tokens_per_step) if budget else None
    if budget_steps is None and config.max_steps is None:
        raise TrainError("no stopping point: give max_steps, token_budget or a plan with tokens")
    total_steps = min(s for s in (budget_steps, config.max_steps) if s is not None)
    horizon = budget_steps or config.max_steps
    precision = _precision(config, device)
    if precision in ("bf16", "fp16") and device.type != "cuda":
        raise TrainError(f"precision {precision} needs a GPU here; use fp32 on CPU")
    if precision == "fp16" and config.parallelism == "fsdp":
        raise TrainError("fp16 with a grad scaler is for DDP; with FSDP use bf16")

    torch.manual_seed(config.seed)
    model = GPT(shape).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    assert n_params == param_count(shape), (n_params, param_count(shape))
    model = parallelize(
        model, device, config.parallelism, config.activation_checkpointing, config.compile,
        mixed_bf16=precision == "bf16" and config.parallelism == "fsdp",
    )
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda",
    )
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
        if precision in ("bf16", "fp16") and config.parallelism != "fsdp"
        else contextlib.nullcontext()
    )
    stopper = EarlyStopping(patience=config.patience, min_delta=config.min_delta)
    plateau = PlateauScale(factor=config.lr_reduce_factor, max_reductions=config.lr_reductions)
    batches = TrainBatches(manifest, shape.seq_len, global_batch, rank, world, config.seed)
    val = ValWindows(manifest, shape.seq_len, config.eval_sequences, rank, world)

    config_digest = hashlib.sha256(
        json.dumps({"shape": shape.to_dict(), "global_batch": global_batch, "seed": config.seed}, sort_keys=True).encode()
    ).hexdigest()
    tokens_digest = file_digest(manifest.root / "manifest.json")
    step, tokens_seen, run_id = 0, 0, None
    previous = ckpt.list_steps(ckpt_root)
    if previous:
        expect = {"config_digest": config_digest, "tokens_digest": tokens_digest}
        state = ckpt.load(previous[-1], model, optimizer, rank, expect)
        step, tokens_seen, run_id = state["step"], state["tokens_seen"], state["mlflow_run_id"]
        stopper.load_state_dict(state["early_stopping"])
        plateau.load_state_dict(state["plateau"])
        if rank == 0:
            print(f"resumed from step {step} ({previous[-1]})", file=sys.stderr, flush=True)

    tracker = None
    metrics_path = out / "metrics.jsonl"
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        (out / "config.json").write_text(config.model_dump_json(indent=2), encoding="utf-8")
        if not (out / "tokenizer").exists():
            shutil.copytree(config.tokenizer, out / "tokenizer")
        kept_lines = metrics_through(metrics_path, step)
        if config.mlflow:
            from pretrain.tracking import Tracker

            tracker = Tracker(
                out, config.tracking_uri, config.experiment, config.mlflow_run_id or run_id, config.system_metrics_every
            )
            opened.append(tracker)
            tracker.backfill(_newest_first(kept_lines))
            tracker.log_params({
                **{f"model.{k}": v for k, v in shape.to_dict().items()},
                "model.params": n_params, "tokenizer_sha256": tokenizer.sha256, "tokens_manifest_sha256": tokens_digest,
                "parallelism": config.parallelism, "world_size": world, "precision": precision,
                "global_batch": global_batch, "micro_batch": config.micro_batch, "grad_accum": accum,
                "lr": config.lr, "warmup_steps": config.warmup_steps, "total_steps": total_steps,
                "token_budget": budget, "patience": config.patience, "min_delta": config.min_delta,
                "lr_reductions": config.lr_reductions, "seed": config.seed, "device": str(device),
                "activation_checkpointing": config.activation_checkpointing, "compile": config.compile,
                **({f"plan.{k}": plan[k] for k in ("params", "tokens", "law", "flops")} if plan else {}),
            })
            run_id = tracker.run_id
    dist.barrier()

    fpt = flops_per_token(shape)
    peak = _peak_flops(config, plan, device, precision)

    def evaluate() -> float:
        model.eval()
        totals = torch.zeros(2, dtype=torch.float64, device=device)
        with torch.no_grad():
            for x, y in val.batches(config.micro_batch):
                x, y = x.to(device), y.to(device)
                with autocast:
                    logits = model(x)
                totals[0] += causal_lm_loss(logits, y, reduction="sum").double()
                totals[1] += y.numel()
        dist.all_reduce(totals)
        # The decision must be bitwise the same on every rank: take rank 0's number.
        dist.broadcast(totals, src=0)
        model.train()
        return (totals[0] / totals[1]).item()

    def save(best: bool) -> None:
        state = {
            "step": step, "tokens_seen": tokens_seen, "data_position": step * global_batch,
            "early_stopping": stopper.state_dict(), "plateau": plateau.state_dict(), "mlflow_run_id": run_id,
            "config_digest": config_digest, "tokens_digest": tokens_digest, "model_shape": shape.to_dict(),
            "tokenizer_sha256": tokenizer.sha256, "world_size": world,
        }
        ckpt.save(ckpt_root, step, model, optimizer, state, rank, config.keep_last, best)

    def report(pending: list, step: int) -> None:
        """Write the per-step records of ``pending``: one all-reduce and one device sync per
        log interval, not per step, so a GPU never waits on the host in between."""
        nonlocal window_start, window_tokens
        losses = torch.stack([p[3] for p in pending])
        dist.all_reduce(losses)
        losses = (losses / world).tolist()
        norms = torch.stack([torch.as_tensor(p[4], dtype=torch.float32, device=device) for p in pending]).tolist()
        records = [
            {"step": s, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": tokens}
            for (s, lr, tokens, _, _), loss, norm in zip(pending, losses, norms)
        ]
        last = records[-1]
        if step % config.log_every == 0 or step == total_steps:
            now = time.perf_counter()
            tps = window_tokens / (now - window_start)
            last["tokens_per_s"] = tps
            if peak:
                last["mfu"] = fpt * tps / (peak * world)
            if device.type == "cuda":
                last["memory_gb"] = torch.cuda.max_memory_allocated(device) / 1e9
            window_start, window_tokens = now, 0
            if rank == 0:
                eta = (total_steps - step) * (now - started) / max(1, step - start_step)
                mfu = f" | MFU {last['mfu']:.1%}" if "mfu" in last else ""
                print(
                    f"step {step}/{total_steps} | loss {last['loss']:.4f} | lr {last['lr']:.2e} | {tps:,.0f} tok/s{mfu}"
                    f" | ETA {_format_eta(eta)}",
                    file=sys.stderr, flush=True,
                )
        if rank == 0:
            for record in records:
                _append_jsonl(metrics_path, record)
                if tracker:
                    tracker.log_metrics(tracked_metrics(record), record["step"])

    fault_step = int(os.environ.get(FAULT_ENV, "-1"))
    stop_reason = "budget" if budget_steps is not None and budget_steps <= (config.max_steps or budget_steps) else "max_steps"
    model.train()
    started, window_start, window_tokens = time.perf_counter(), time.perf_counter(), 0
    start_step = step
    unreported: list = []
    while step < total_steps:
        lr = cosine_lr(step, config.lr, config.lr * config.min_lr_ratio, config.warmup_steps, horizon) * plateau.scale
        for group in optimizer.param_groups:
            group["lr"] = lr
        x_all, y_all = batches.get(step)
        loss_sum = torch.zeros((), device=device)
        for micro in range(accum):
            rows = slice(micro * config.micro_batch, (micro + 1) * config.micro_batch)
            x, y = x_all[rows].to(device, non_blocking=True), y_all[rows].to(device, non_blocking=True)
            sync = micro == accum - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync():
                if hasattr(model, "set_requires_gradient_sync"):  # FSDP2: reduce-scatter once per step
                    model.set_requires_gradient_sync(micro == accum - 1)
                with autocast:
                    logits = model(x)
                loss = causal_lm_loss(logits, y) / accum
                (scaler.scale(loss) if scaler else loss).backward()
            loss_sum += loss.detach()
        if scaler:
            scaler.unscale_(optimizer)
        # The norm of the whole gradient: DDP has all-reduced it, FSDP's is a DTensor over shards.
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip or float("inf"))
        if hasattr(grad_norm, "full_tensor"):
            grad_norm = grad_norm.full_tensor()
        if scaler:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        tokens_seen += tokens_per_step
        window_tokens += tokens_per_step
        unreported.append((step, lr, tokens_seen, loss_sum, grad_norm))
        if step == fault_step:
            import signal

            os.kill(os.getpid(), signal.SIGKILL)
        evaluating = step % config.eval_every == 0 or step == total_steps
        periodic_save = step % config.checkpoint_every == 0 or step == total_steps
        # Report before any checkpoint: a resumed run restarts after it and would not redo them.
        if step % config.log_every == 0 or evaluating or periodic_save:
            report(unreported, step)
            unreported = []

        decision = None
        if evaluating:
            val_loss = evaluate()
            decision = stopper.update(val_loss, step, plateau if config.lr_reductions else None)
            if rank == 0:
                record = {"step": step, "val_loss": val_loss, "lr_scale": plateau.scale, "tokens": tokens_seen}
                _append_jsonl(metrics_path, record)
                note = " (best)" if decision.improved else " (lr reduced)" if decision.reduce_lr else ""
                print(f"step {step} | val loss {val_loss:.4f}{note}", file=sys.stderr, flush=True)
                if tracker:
                    tracker.log_metrics(tracked_metrics(record), step)
        if periodic_save or (decision and (decision.improved or decision.stop)):
            save(best=bool(decision and decision.improved))
        if decision and decision.stop:
            stop_reason = "early_stopping"
            break

    elapsed = time.perf_counter() - started
    summary = {
        "stop_reason": stop_reason, "best_step": stopper.best_step,
        "best_val_loss": None if math.isinf(stopper.best_loss) else stopper.best_loss,
        "steps": step, "tokens_seen": tokens_seen, "mlflow_run_id": run_id,
        "params": n_params, "world_size": world, "parallelism": config.parallelism, "precision": precision,
        "seconds": round(elapsed, 3),
        "tokens_per_s": round((step - start_step) * tokens_per_step / elapsed, 1) if step > start_step else None,
    }
    if tracker:
        # Measured while training ran; the final flush and artifact uploads come after.
        summary["tracking_seconds"] = round(tracker.overhead_seconds, 4)
        summary["tracking_share"] = round(tracker.overhead_seconds / elapsed, 5)
    if rank == 0:
        from pretrain.loss_curve import plot_losses

        plot_losses(metrics_path, out / "loss.png")
        (out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
        if tracker:
            tracker.finish(
                summary, artifacts=[out / "loss.png", out / "summary.json", out / "config.json"]
                + ([Path(config.plan)] if config.plan else []),
                tokenizer_dir=out / "tokenizer", best_dir=ckpt_root / "best", register_as=config.register_as,
            )
        print(
            f"done: {stop_reason} after {step} steps, {tokens_seen:,} tokens; best val loss "
            f"{summary['best_val_loss'] if summary['best_val_loss'] is None else round(summary['best_val_loss'], 4)} "
            f"at step {stopper.best_step}; {out}",
            file=sys.stderr, flush=True,
        )
    return summary


def main(argv: list[str] | None = None) -> int:
    """``python -m pretrain.train ARGS`` (under torchrun): ``dapt train ARGS`` in this process."""
    from pipelines.cli import main as dapt

    return dapt(["train", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    # See pretrain.parallelize.teardown_distributed: skip the interpreter's exit under gloo.
    os._exit(code)
