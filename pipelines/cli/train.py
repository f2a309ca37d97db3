"""``dapt train``, ``dapt generate``, ``dapt score``: the pretraining stage and its model.

Thin over :mod:`pretrain.train` and :mod:`pretrain.inference`; torch and MLflow are
imported when a command runs. ``dapt train --nproc-per-node N`` re-launches itself under
torchrun (``python -m torch.distributed.run ... -m pretrain.train``) with the validated
configuration, so the workers read exactly what was checked here.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TRAIN_EPILOG = """\
examples:
  # the planner's model on the tokenized corpus, 1 process (CPU or one GPU)
  dapt train --tokens out/tokens --tokenizer out/tokenizer --plan PLAN.json --output runs/r1

  # a tiny model by hand, 2 processes (gloo on CPU, NCCL on GPUs), stop after 200 steps
  dapt train --tokens out/tokens --tokenizer out/tokenizer --n-layer 2 --d-model 64 --n-head 1 \\
      --seq-len 64 --max-steps 200 --nproc-per-node 2 --output runs/tiny

  # FSDP2 with activation checkpointing and torch.compile, early stopping after 3 flat evals
  dapt train ... --parallelism fsdp --activation-checkpointing --compile --patience 3 --lr-reductions 1

  # the same job under torchrun directly (multi-node: see infra/torchrun.md)
  torchrun --standalone --nproc-per-node 8 -m pretrain.train --tokens ... --output runs/r1

Running again with the same --output resumes from the latest checkpoint. Outputs:
RUNDIR/summary.json, metrics.jsonl, loss.png, checkpoints/{step-N,best}/ (safetensors),
tokenizer/ (copy of the bundle). MLflow: MLFLOW_TRACKING_URI or --tracking-uri
(default sqlite:///mlflow.db); the model is registered with the alias "candidate";
--mlflow-run-id RUN logs into a run made beforehand (dapt run makes one per training)."""

GENERATE_EPILOG = """\
examples:
  dapt generate --model runs/r1 --prompt "Net income for the quarter" --max-tokens 40
  dapt generate --model models:/dapt@candidate --prompt "Symptoms of" --temperature 0.8 --top-p 0.9"""

SCORE_EPILOG = """\
examples:
  dapt score --model runs/r1 held_out.jsonl.gz          # one JSON line per document
  dapt score --model models:/dapt@candidate notes.txt   # a text file is one document

FILE: .jsonl / .jsonl.gz (a "text" field, "id" if present), .parquet (the kept/ schema),
or any other file as one document."""

#: TrainConfig fields that are set by dedicated flags, not the generic loop.
_SPECIAL = {"tokens", "tokenizer", "output", "plan", "model"}
_MODEL_FLAGS = ("n_layer", "d_model", "n_head", "seq_len", "ffn_hidden")


def _error(command: str, message) -> None:
    print(f"dapt {command}: error: {message}", file=sys.stderr)


def _one_line(command: str):
    def fail(message: str) -> None:
        _error(command, message)
        raise SystemExit(2)

    return fail


def register(subparsers, training_options: bool = True) -> None:
    """``training_options``: add the flags generated from
    :class:`~pretrain.train.TrainConfig` (importing it costs ~0.1 CPU-s, so the CLI
    skips them when another command runs)."""
    train = subparsers.add_parser(
        "train", help="pretrain the model on the token shards (torchrun, DDP/FSDP2, MLflow)",
        description="Pretrain a decoder-only LM with early stopping, exact resume and MLflow tracking.",
        epilog=TRAIN_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    train.error = _one_line("train")
    io = train.add_argument_group("inputs and output")
    io.add_argument("--tokens", metavar="TOKDIR", help="output of dapt tokenize")
    io.add_argument("--tokenizer", metavar="BUNDLE", help="the bundle the tokens were made with")
    io.add_argument("--plan", metavar="PLAN.json", help="model shape and token budget from dapt plan --json")
    io.add_argument("--output", metavar="RUNDIR", help="run directory (resumed when it has checkpoints)")
    io.add_argument("--config-json", metavar="FILE", help=argparse.SUPPRESS)
    shape = train.add_argument_group("model shape, instead of --plan (vocabulary from the tokens)")
    for name in _MODEL_FLAGS:
        shape.add_argument("--" + name.replace("_", "-"), type=int, metavar="N")
    shape.add_argument("--tie-embeddings", action="store_true", default=None)
    launch = train.add_argument_group("launch")
    launch.add_argument("--nproc-per-node", type=int, metavar="N", help="start N processes with torchrun")
    launch.add_argument("--nnodes", metavar="N", help="torchrun --nnodes (multi-node)")
    launch.add_argument("--node-rank", metavar="R", help="torchrun --node-rank")
    launch.add_argument("--rdzv-endpoint", metavar="HOST:PORT", help="torchrun rendezvous endpoint")
    if training_options:
        _training_options(train.add_argument_group("training"))
    train.set_defaults(func=run_train)

    generate = subparsers.add_parser(
        "generate", help="continue a prompt with a trained model", epilog=GENERATE_EPILOG,
        description="Sample continuations with a trained model and its own frozen tokenizer.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    generate.error = _one_line("generate")
    _model_arguments(generate)
    generate.add_argument("--prompt", action="append", required=True, help="repeat for several prompts")
    generate.add_argument("--max-tokens", type=int, default=64)
    generate.add_argument("--temperature", type=float, default=1.0, help="0 = greedy")
    generate.add_argument("--top-k", type=int, default=None)
    generate.add_argument("--top-p", type=float, default=None)
    generate.add_argument("--seed", type=int, default=0)
    generate.set_defaults(func=run_generate)

    score = subparsers.add_parser(
        "score", help="per-document loss and perplexity of a file", epilog=SCORE_EPILOG,
        description="Score documents with a trained model and its own frozen tokenizer.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    score.error = _one_line("score")
    _model_arguments(score)
    score.add_argument("file", metavar="FILE")
    score.set_defaults(func=run_score)


def _training_options(options) -> None:
    from pretrain.train import TrainConfig

    for name, field in TrainConfig.model_fields.items():
        if name in _SPECIAL:
            continue
        flag = "--" + name.replace("_", "-")
        kind = field.annotation
        default = field.default
        shown = "" if default is None else f"default {default}"
        text = "; ".join(part for part in (field.description, shown) if part)
        if kind is bool:
            options.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        base = {int: int, float: float}.get(kind) or {"int | None": int, "float | None": float}.get(str(kind), str)
        choices = getattr(kind, "__args__", None) if str(kind).startswith("typing.Literal") else None
        metavar = None if choices else {int: "N", float: "X"}.get(base, "VALUE")
        options.add_argument(flag, type=base, choices=choices, default=None, metavar=metavar, help=text)


def _model_arguments(parser) -> None:
    parser.add_argument("--model", required=True, metavar="RUNDIR|models:/NAME@ALIAS")
    parser.add_argument("--tokenizer", metavar="BUNDLE", help="checked against the model's own (default: it)")
    parser.add_argument("--device", default="cpu")


def config_from_args(args: argparse.Namespace) -> dict:
    from pretrain.train import TrainConfig

    if args.config_json:
        return json.loads(Path(args.config_json).read_text(encoding="utf-8"))
    data = {name: getattr(args, name) for name in ("tokens", "tokenizer", "output", "plan")}
    model = {name: getattr(args, name) for name in (*_MODEL_FLAGS, "tie_embeddings")}
    if any(v is not None for v in model.values()):
        data["model"] = {k: v for k, v in model.items() if v is not None}
    for name in TrainConfig.model_fields:
        if name not in _SPECIAL and getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    return {k: v for k, v in data.items() if v is not None}


def run_train(args: argparse.Namespace) -> int:
    from pretrain.train import TrainError, parse_config

    try:
        config = parse_config(config_from_args(args))
    except TrainError as exc:
        _error("train", exc)
        return 2
    if args.nproc_per_node and "TORCHELASTIC_RUN_ID" not in os.environ:
        return _launch(config, args)
    return _train_here(config)


def torchrun_command(
    launch_file: Path, nproc_per_node: int, nnodes: str | None = None, node_rank: str | None = None,
    rdzv_endpoint: str | None = None,
) -> list[str]:
    """The torchrun command that trains the configuration in ``launch_file`` (a
    :class:`~pretrain.train.TrainConfig` as JSON) with ``nproc_per_node`` processes: one
    machine (``--standalone``), or with ``nnodes`` this node of a c10d rendezvous."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc_per_node)]
    if nnodes:
        torchrun += ["--nnodes", nnodes, "--node-rank", node_rank or "0", "--rdzv-backend", "c10d",
                     "--rdzv-endpoint", rdzv_endpoint or "127.0.0.1:29500"]
    else:
        torchrun += ["--standalone"]
    return [*torchrun, "-m", "pretrain.train", "--config-json", str(launch_file)]


def write_launch_file(config) -> Path:
    """``RUNDIR/launch.json``: the validated configuration the torchrun workers read."""
    out = Path(config.output)
    out.mkdir(parents=True, exist_ok=True)
    launch_file = out / "launch.json"
    # Every node of a multi-node job on a shared RUNDIR writes this file while the others'
    # workers may be reading it: a reader must see a whole file, never a truncated one.
    fd, staging = tempfile.mkstemp(prefix=".launch-", suffix=".json", dir=out)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(config.model_dump_json(indent=2))
    os.replace(staging, launch_file)
    return launch_file


def _launch(config, args) -> int:
    return subprocess.call(torchrun_command(write_launch_file(config), args.nproc_per_node, args.nnodes,
                                            args.node_rank, args.rdzv_endpoint))


def _train_here(config) -> int:
    from pretrain.checkpoint import CheckpointError
    from pretrain.data import DataError
    from pretrain.tracking import TrackingError
    from pretrain.train import TrainError, train
    from tokenizer.bundle import BundleError

    try:
        train(config)
    except (TrainError, DataError, CheckpointError, BundleError, TrackingError) as exc:
        _error("train", exc)
        return 2
    return 0


def run_generate(args: argparse.Namespace) -> int:
    from pretrain.inference import InferenceError, load

    try:
        lm = load(args.model, args.tokenizer, args.device)
    except InferenceError as exc:
        _error("generate", exc)
        return 2
    texts = lm.generate(args.prompt, args.max_tokens, args.temperature, args.top_k, args.top_p, args.seed)
    for prompt, text in zip(args.prompt, texts):
        print(prompt + text)
    return 0


def _documents(path: str) -> list[tuple[str, str]]:
    import gzip

    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        table = pq.read_table(path, columns=["id", "text"]).to_pydict()
        return list(zip(table["id"], table["text"]))
    if path.endswith((".jsonl", ".jsonl.gz")):
        opener = gzip.open if path.endswith(".gz") else open
        docs = []
        with opener(path, "rt", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    text = record["text"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise ValueError(f"{path}:{n}: not a JSON object with a \"text\" field") from None
                docs.append((str(record.get("id", n)), text))
        return docs
    return [(os.path.basename(path), Path(path).read_text(encoding="utf-8"))]


def run_score(args: argparse.Namespace) -> int:
    from pretrain.inference import InferenceError, load

    try:
        docs = _documents(args.file)
    except (OSError, ValueError) as exc:
        _error("score", exc)
        return 2
    try:
        lm = load(args.model, args.tokenizer, args.device)
    except InferenceError as exc:
        _error("score", exc)
        return 2
    scores = lm.score([text for _, text in docs])
    for (doc_id, _), result in zip(docs, scores):
        print(json.dumps({"id": doc_id, **result}))
    tokens = sum(s["tokens"] for s in scores)
    mean = sum(s["loss"] * s["tokens"] for s in scores) / max(1, tokens)
    print(f"{len(docs)} documents, {tokens:,} tokens, loss {mean:.4f} nats/token", file=sys.stderr)
    return 0
