"""``dapt plan``: size the model from the compute budget and the tokens really available.

Thin over :mod:`pretrain.planner`; the planner (numpy, pydantic) and the plot
(matplotlib) are imported when the command runs, so other commands do not pay for them.
"""

from __future__ import annotations

import argparse
import json
import sys

from pretrain.hardware import ACCELERATORS, PRECISIONS
from pretrain.memory import SHARDINGS

DESCRIPTION = """\
Size a pretraining run: parameters, tokens, epochs, GPU-hours, model shape and memory per
GPU, from any consistent subset of a compute budget, the unique tokens available, a fixed
model size and the tokens the model will serve. Prints a table, or JSON with --json."""

EPILOG = """\
examples:
  # 8 H100s for a day on 2B unique tokens of domain text
  dapt plan --gpu h100 --gpus 8 --hours 24 --mfu 0.4 --unique-tokens 2e9

  # a FLOPs budget and the frozen tokenizer's train tokens, as JSON for the next stage
  dapt plan --flops 1e21 --tokens-manifest TOKENS/manifest.json --json > PLAN.json

  # fix the size: tokens, GPU-hours and memory for a 1.3B model on 64 A100s with FSDP
  dapt plan --params 1.3B --gpu a100 --gpus 64 --sharding fsdp --micro-batch 8

  # a model that will serve 2T tokens: smaller and trained longer at equal loss
  dapt plan --flops 1e22 --inference-tokens 2T --plot plan.png

  # the plan: section of a pipeline config, with a flag overriding one key
  dapt plan --config pipeline.yaml --law chinchilla-1

laws (--law):
  epoch          Epoch AI refit of Chinchilla's Approach 3 (Besiroglu et al. 2024); default
  chinchilla-1   Chinchilla Approach 1, training-curve minima (Hoffmann et al. 2022, Table 3)
  chinchilla-2   Chinchilla Approach 2, IsoFLOP profiles (Hoffmann et al. 2022, Table A3)
  chinchilla-3   Chinchilla Approach 3 with the paper's rounded constants

Counts accept 2e9, 2000000000, 1.3B, 400M or 2T. Peak throughput is the datasheet's dense
figure for the precision; GPU-hours = FLOPs / (peak x MFU)."""

#: Parsed options handed to the planner, by their planner names.
_OPTIONS = (
    "flops", "gpu", "gpus", "hours", "gpu_hours", "mfu", "unique_tokens", "tokens_manifest",
    "params", "vocab_size", "precision", "sharding", "seq_len", "micro_batch",
    "inference_tokens", "law",
)


def _report(message) -> None:
    print(f"dapt plan: error: {message}", file=sys.stderr)


def _one_line_error(message: str) -> None:
    _report(message)
    raise SystemExit(2)


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "plan",
        help="size the model from the compute budget and the tokens available",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    # argparse prints usage before its message; the CLI's errors are one line.
    parser.error = _one_line_error

    budget = parser.add_argument_group("compute budget (give one)")
    budget.add_argument("--flops", metavar="C", help="training FLOPs, e.g. 1e21")
    budget.add_argument("--hours", type=float, metavar="H", help="wall-clock hours on --gpus")
    budget.add_argument("--gpu-hours", type=float, metavar="H", help="GPU-hours on --gpu")

    hardware = parser.add_argument_group("hardware")
    hardware.add_argument(
        "--gpu", type=str.lower, choices=tuple(ACCELERATORS), metavar="TYPE",
        help="accelerator: " + ", ".join(ACCELERATORS),
    )
    hardware.add_argument("--gpus", type=int, metavar="N", help="number of GPUs (default 1)")
    hardware.add_argument(
        "--mfu", type=float, metavar="M",
        help="model FLOPs utilisation, 0-1 (default 0.4 when --gpu is given)",
    )
    hardware.add_argument(
        "--precision", choices=tuple(PRECISIONS),
        help="default bf16-mixed (fp16-mixed on V100)",
    )
    hardware.add_argument(
        "--sharding", choices=SHARDINGS,
        help="none: every GPU holds all states (DDP); fsdp: shard them over --gpus",
    )
    hardware.add_argument(
        "--micro-batch", type=int, metavar="B",
        help="sequences per GPU per step; activations from the shape instead of 8 B/param",
    )

    data = parser.add_argument_group("data")
    data.add_argument("--unique-tokens", metavar="N", help="unique training tokens available")
    data.add_argument(
        "--tokens-manifest", metavar="TOKDIR/manifest.json",
        help="read train_tokens (and vocab_size) from the tokenizer stage's manifest",
    )

    model = parser.add_argument_group("model")
    model.add_argument("--params", metavar="N", help="fix the model size and plan the tokens")
    model.add_argument("--vocab-size", type=int, metavar="V", help="default: manifest, else 32000")
    model.add_argument("--seq-len", type=int, metavar="L", help="sequence length (default 2048)")
    model.add_argument(
        "--inference-tokens", metavar="N",
        help="tokens the model will serve; favours a smaller model trained longer",
    )
    model.add_argument("--law", metavar="LAW", help="scaling law (see below; default epoch)")

    output = parser.add_argument_group("input and output")
    output.add_argument("--config", metavar="PIPELINE.yaml", help="read its plan: section")
    output.add_argument("--json", action="store_true", help="print only JSON on stdout")
    output.add_argument("--plot", metavar="FILE.png", help="write the loss-landscape figure")

    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from pretrain.planner import PlanError, plan, plan_from_config, read_plan_section

    options = {name: getattr(args, name) for name in _OPTIONS if getattr(args, name) is not None}
    try:
        if args.config:
            result = plan_from_config(read_plan_section(args.config), **options)
        else:
            result = plan(**options)
    except PlanError as exc:
        _report(exc)
        return 2
    if args.plot:
        from pretrain.plot import plot_plan

        try:
            plot_plan(result, args.plot)
        except (OSError, ValueError) as exc:
            _report(f"cannot write --plot {args.plot}: {exc}")
            return 2
    print(json.dumps(result.to_json(), indent=2) if args.json else result.to_table())
    if args.plot and not args.json:
        print(f"\nplot: {args.plot}")
    return 0
