"""``dapt run PIPELINE.yaml``: every stage in order, each output cached by content.

Stages (:data:`STAGES`)::

    clean ─► validate ─► tokenizer ─► tokenize ─► plan ─► train ─► register

Each stage writes to ``WORK/<stage>/<key>/`` where the key is a digest of its inputs,
config and code (:mod:`pipelines.stage_cache`); a stage whose key is already done is
skipped and says so. A killed run started again redoes only the stage it was killed in
(training resumes from its last checkpoint), so it ends with the outputs of an
uninterrupted run; MLflow gets the same parent run and no second child per stage
(:mod:`pipelines.run_tracking`). A lock (:mod:`pipelines.lock`) keeps two runs of one
pipeline apart.

Cleaning is incremental, one *delivery* at a time: each corpus is cleaned on its own
against the persistent dedup index of every delivery cleaned before it (the
``dedup_index.parquet`` of earlier clean outputs), and the clean stage's output for
the pipeline is the list of deliveries of its corpora. A corpus delivered again with
additions is cleaned again, and the documents kept from its earlier delivery are
rejected as already kept, so they are not kept twice; the deliveries are recorded, in
order, in ``WORK/clean/ledger-<config>.json``. A changed ``clean:`` section or cleaning
code starts a new ledger; ``--force clean`` starts the current one afresh.
"""

from __future__ import annotations

import functools
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.config import PipelineConfig
from pipelines.stage_cache import (
    StageRecord,
    code_version,
    digest,
    files_digest,
    forget,
    load_record,
    output_dir,
    save_record,
)

STAGES = ("clean", "validate", "tokenizer", "tokenize", "plan", "train", "register")


class FlowError(RuntimeError):
    """A run that cannot go on, as one message; ``exit_code`` 1 (a stage failed) or 2
    (the request cannot be met)."""

    def __init__(self, message: str, exit_code: int = 1, record: StageRecord | None = None):
        super().__init__(message)
        self.exit_code = exit_code
        #: What the failed stage measured, logged to its child run before it is marked failed.
        self.record = record


def stage_errors() -> tuple[type[Exception], ...]:
    """The errors by which the stages say, in one line, that their input or config is at
    fault (a bug still shows its traceback)."""
    from pipelines.config import ConfigError
    from pipelines.stats import AccountingError
    from pipelines.tokenize import TokenizeError
    from pretrain.checkpoint import CheckpointError
    from pretrain.data import DataError
    from pretrain.planner import PlanError
    from pretrain.tracking import TrackingError
    from pretrain.train import TrainError
    from tokenizer.bundle import BundleError
    from tokenizer.config import TokenizerConfigError
    from tokenizer.kept import KeptError
    from tokenizer.train import TrainError as TokenizerTrainError
    from validation.datadocs import DataDocsError
    from validation.tables import OutputError

    return (ConfigError, AccountingError, TokenizeError, CheckpointError, DataError, PlanError, TrackingError,
            TrainError, BundleError, TokenizerConfigError, KeptError, TokenizerTrainError, DataDocsError, OutputError)


@dataclass
class FlowOptions:
    workdir: Path
    tracking_uri: str
    from_stage: str = "clean"
    until_stage: str = "register"
    force: frozenset[str] = frozenset()
    beam_args: list[str] = field(default_factory=list)
    show_progress: bool = True
    say: Callable[[str], None] = lambda line: print(line, file=sys.stderr, flush=True)


@dataclass
class FlowResult:
    run_id: str
    records: dict[str, list[StageRecord]]
    params: dict
    metrics: dict
    tracking_uri: str
    corpora: dict[str, dict]
    #: Which output each stage used (``dapt_key.<stage>``): tags, not params, so that a
    #: comparison of two runs lists what changed in the data and model, not every hash.
    tags: dict[str, str]


@dataclass
class Delivery:
    """One entry of the clean ledger: a corpus as it was delivered, and its clean output."""

    corpus: str
    files: str
    config: str
    key: str


class Ledger:
    """The deliveries cleaned under one clean config and code version, in order."""

    def __init__(self, path: Path):
        self.path = path
        self.entries: list[Delivery] = []
        if path.is_file():
            self.entries = [Delivery(**e) for e in json.loads(path.read_text(encoding="utf-8"))]

    def head(self, upto: int | None = None) -> str:
        return digest([e.key for e in self.entries[:upto]])

    def latest(self, corpus: str) -> Delivery | None:
        return next((e for e in reversed(self.entries) if e.corpus == corpus), None)

    def append(self, entry: Delivery) -> None:
        self.entries.append(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps([e.__dict__ for e in self.entries], indent=2), encoding="utf-8")
        tmp.replace(self.path)

    def reset(self) -> None:
        self.entries = []
        self.path.unlink(missing_ok=True)


class Flow:
    def __init__(self, config: PipelineConfig, name: str, options: FlowOptions, tracking):
        self.config = config
        self.name = name
        self.o = options
        self.work = options.workdir
        self.tracking = tracking
        self.records: dict[str, list[StageRecord]] = {}

    # -- driving ------------------------------------------------------------------------
    def selected(self, stage: str) -> bool:
        i = STAGES.index(stage)
        return STAGES.index(self.o.from_stage) <= i <= STAGES.index(self.o.until_stage)

    def past(self, stage: str) -> bool:
        return STAGES.index(stage) > STAGES.index(self.o.until_stage)

    def stage(self, name: str, compute: Callable[[str], list[StageRecord]], artifacts=lambda records: [],
              summary: Callable[[list[StageRecord]], StageRecord] | None = None) -> list[StageRecord]:
        """Run one stage under its child run (or, before ``--from``, require its cache).

        ``compute`` gets the child run's id (``"cached-only"`` before ``--from``); the
        child logs ``summary(records)`` when given, else every record's values."""
        if not self.selected(name):
            self.records[name] = compute("cached-only")
            return self.records[name]
        run_id, finished = self.tracking.stage_run(name)
        started = time.monotonic()
        try:
            records = compute(run_id)
        except Exception as exc:
            record = getattr(exc, "record", None)
            if record is not None:
                self.tracking.log(run_id, record.params, record.metrics)
            self.tracking.fail_stage(run_id, str(exc))
            if isinstance(exc, stage_errors()):
                raise FlowError(f"{name}: {exc}") from None
            raise
        self.records[name] = records
        if not finished:
            logged = [summary(records)] if summary else records
            self.tracking.log_stage(run_id, logged, artifacts(records))
        state = "cached" if all(r.cached for r in records) else "done"
        self.o.say(f"{name:<10}{state:<8}{time.monotonic() - started:7.1f} s  "
                   f"{', '.join(r.short for r in records)}  {self._where(records)}")
        return records

    def _where(self, records: list[StageRecord]) -> str:
        outputs = sorted({r.output for r in records})
        return outputs[0] if len(outputs) == 1 else f"{len(outputs)} outputs under {self.work / records[0].stage}"

    def cached_or(self, stage: str, key: str, mode: str, produce: Callable[[Path], StageRecord]) -> StageRecord:
        """The done record of ``key``, or ``produce`` it (unless only the cache may be used)."""
        if stage in self.o.force and mode != "cached-only":
            from pipelines.output import remove_tree

            forget(self.work, stage, key)
            remove_tree(str(output_dir(self.work, stage, key)))
        record = load_record(self.work, stage, key)
        if record is not None:
            return record
        if mode == "cached-only":
            raise FlowError(
                f"--from {self.o.from_stage}: stage {stage} has no finished output for the current inputs "
                f"(key {key[:12]}); run from an earlier stage", exit_code=2,
            )
        out = output_dir(self.work, stage, key)
        started = time.monotonic()
        record = produce(out)
        record.seconds = round(time.monotonic() - started, 2)
        save_record(self.work, record)
        return record

    # -- clean ----------------------------------------------------------------------------
    def clean(self, mode: str) -> list[StageRecord]:
        from pipelines.read import list_files

        clean = self.config.clean
        namespace = digest({"clean": clean.model_dump(), "code": code_version("clean")})
        ledger = Ledger(self.work / "clean" / f"ledger-{namespace[:16]}.json")
        if "clean" in self.o.force and mode != "cached-only":
            ledger.reset()
        fresh: dict[str, StageRecord] = {}
        for corpus in self.config.corpora:
            files, missing = list_files(corpus)
            delivered = digest([files_digest(files), [m["file"] for m in missing]])
            described = digest(corpus.model_dump())
            latest = ledger.latest(corpus.name)
            if latest and (latest.files, latest.config) == (delivered, described):
                if load_record(self.work, "clean", latest.key) is None:
                    raise FlowError(f"clean: the output of {corpus.name}'s delivery {latest.key[:12]} is gone from "
                                    f"{self.work / 'clean'}; rebuild with --force clean", exit_code=2)
                continue
            key = digest({"namespace": namespace, "corpus": described, "files": delivered, "before": ledger.head()})
            parts = [str(output_dir(self.work, "clean", e.key) / "dedup_index.parquet") for e in ledger.entries]
            fresh[key] = self.cached_or("clean", key, mode,
                                        functools.partial(self._clean_one, corpus, parts, delivered, key))
            ledger.append(Delivery(corpus.name, delivered, described, key))
        names = {c.name for c in self.config.corpora}
        return [fresh.get(e.key) or load_record(self.work, "clean", e.key) for e in ledger.entries if e.corpus in names]

    def _clean_one(self, corpus, parts: list[str], delivered: str, key: str, out: Path) -> StageRecord:
        from pipelines.clean import run_clean

        self.o.say(f"clean     {corpus.name}: new delivery {delivered[:12]}, deduplicated against "
                   f"{len(parts)} earlier deliveries")
        single = self.config.model_copy(update={"corpora": [corpus]})
        try:
            stats = run_clean(single, str(out), beam_args=self.o.beam_args, show_progress=self.o.show_progress,
                              dedup_index=parts)
        except stage_errors() as err:
            raise FlowError(f"clean {corpus.name}: {err}") from None
        words = sum(d.get("words", 0) for d in stats["by_domain"].values())
        return StageRecord(
            "clean", key, str(out),
            params={f"corpus.{corpus.name}.digest": delivered},
            info={"corpus": corpus.name, "domain": corpus.domain, "input": stats["input"], "kept": stats["kept"],
                  "quarantined": stats["quarantined"], "rejected": stats["rejected"], "words": words},
        )

    @staticmethod
    def corpora(records: list[StageRecord]) -> dict[str, dict]:
        """Per corpus over its deliveries: documents in (of the latest delivery), kept and
        words (all deliveries), and the latest delivery's figures."""
        corpora: dict[str, dict] = {}
        for r in records:
            info = r.info
            c = corpora.setdefault(info["corpus"], {"domain": info["domain"], "kept": 0, "words": 0, "deliveries": 0})
            c["documents_in"] = info["input"]
            c["kept"] += info["kept"]
            c["words"] += info["words"]
            c["deliveries"] += 1
            c["latest"] = info
        return corpora

    def clean_summary(self, records: list[StageRecord]) -> StageRecord:
        """What the clean child run shows: per corpus, not per delivery."""
        params, metrics = {}, {}
        for r in records:
            params.update(r.params)
        for name, c in self.corpora(records).items():
            latest = c["latest"]
            metrics.update({
                f"{name}.documents_in": c["documents_in"], f"{name}.kept": c["kept"],
                f"{name}.deliveries": c["deliveries"], f"{name}.quarantined": latest["quarantined"],
                **{f"{name}.rejected.{reason}": n for reason, n in latest["rejected"].items()},
            })
        summary = StageRecord("clean", "", "", params, metrics)
        summary.cached = all(r.cached for r in records)
        return summary

    # -- validate -------------------------------------------------------------------------
    def validate(self, mode: str, deliveries: list[StageRecord]) -> list[StageRecord]:
        records = []
        for delivery in deliveries:
            key = digest({"delivery": delivery.key, "validate": self.config.validation.model_dump(),
                          "clean": self.config.clean.model_dump(), "code": code_version("validate")})
            record = self.cached_or("validate", key, mode, functools.partial(self._validate_one, delivery, key))
            records.append(record)
        failed = [r for r in records if r.metrics["blocking_failed"]]
        if failed:
            lines = "; ".join(f"{r.info['corpus']}: {', '.join(r.info['failed'])}" for r in failed)
            raise FlowError(f"validate: blocking checks failed, the run stops before the tokenizer ({lines}); "
                            f"see {failed[0].output}/result.json")
        return records

    @staticmethod
    def validation_artifacts(record: StageRecord) -> list[tuple[Path, str]]:
        from validation.gate import DATA_DOCS_DIR, RESULT_FILE

        corpus = record.info["corpus"]
        return [(Path(record.output) / RESULT_FILE, corpus),
                (Path(record.output) / DATA_DOCS_DIR, f"{corpus}/{DATA_DOCS_DIR}")]

    def _validate_one(self, delivery: StageRecord, key: str, out: Path) -> StageRecord:
        from validation.gate import validate

        report = validate(delivery.output, self.config.validation, self.config.clean, report_dir=str(out))
        corpus = delivery.info["corpus"]
        failed = sorted(r.describe() for r in report.blocking_failures)
        record = StageRecord(
            "validate", key, str(out),
            metrics={f"{corpus}.checks": len(report.results), f"{corpus}.blocking_failed": len(failed),
                     f"{corpus}.warnings": len(report.warnings), f"{corpus}.passed": float(not failed),
                     "blocking_failed": len(failed)},
            info={"corpus": corpus, "failed": failed, "warnings": sorted(r.describe() for r in report.warnings)},
        )
        if failed:
            # Not saved as done: a failed gate is re-checked on the next run.
            raise FlowError(f"validate {corpus}: blocking checks failed: {'; '.join(failed)} "
                            f"(report {out}/result.json)", record=record)
        return record

    # -- tokenizer and tokenize -----------------------------------------------------------
    def tokenizer(self, mode: str, deliveries: list[StageRecord]) -> list[StageRecord]:
        key = digest({"tokenizer": self.config.tokenizer.model_dump(), "deliveries": [d.key for d in deliveries],
                      "code": code_version("tokenizer")})

        def produce(out: Path) -> StageRecord:
            from pipelines.output import remove_tree
            from tokenizer.train import train_tokenizer

            remove_tree(str(out))  # an interrupted attempt; a bundle is never written over
            manifest = train_tokenizer([d.output for d in deliveries], str(out), self.config.tokenizer)
            return StageRecord(
                "tokenizer", key, str(out),
                params={"sha256": manifest["sha256"], "vocab_size": manifest["vocab_size"],
                        "model_type": manifest["model_type"]},
                metrics={"sample_sentences": manifest["sample"]["sentences"], "sample_bytes": manifest["sample"]["bytes"]},
            )

        return [self.cached_or("tokenizer", key, mode, produce)]

    def tokenize(self, mode: str, deliveries: list[StageRecord], bundle: StageRecord, words: dict) -> list[StageRecord]:
        key = digest({"tokenize": self.config.tokenize.model_dump(), "tokenizer": bundle.key,
                      "deliveries": [d.key for d in deliveries], "code": code_version("tokenize")})

        def produce(out: Path) -> StageRecord:
            from pipelines.tokenize import run_tokenize

            manifest = run_tokenize([d.output for d in deliveries], bundle.output, str(out), self.config.tokenize,
                                    beam_args=self.o.beam_args, show_progress=self.o.show_progress)
            metrics = {"train_tokens": manifest["train_tokens"], "val_tokens": manifest["val_tokens"]}
            total_tokens = total_words = 0
            for domain, group in manifest["by_domain"].items():
                metrics[f"tokens.{domain}"] = group["tokens"]
                metrics[f"documents.{domain}"] = group["documents"]
                # EOS is one token per document that no word produced.
                text_tokens = group["tokens"] - group["documents"]
                if words.get(domain):
                    metrics[f"fertility.{domain}"] = round(text_tokens / words[domain], 4)
                    total_tokens += text_tokens
                    total_words += words[domain]
            if total_words:
                metrics["fertility"] = round(total_tokens / total_words, 4)
            return StageRecord("tokenize", key, str(out), params={"tokenizer_sha256": manifest["tokenizer_sha256"]},
                               metrics=metrics)

        return [self.cached_or("tokenize", key, mode, produce)]

    # -- plan, train, register ------------------------------------------------------------
    def plan(self, mode: str, tokens: StageRecord) -> list[StageRecord]:
        section = self.config.plan.model_dump(exclude_none=True)
        key = digest({"plan": section, "tokens": tokens.key, "code": code_version("plan")})

        def produce(out: Path) -> StageRecord:
            from pretrain.planner import plan_from_config

            result = plan_from_config(section, tokens_manifest=str(Path(tokens.output) / "manifest.json"))
            plan = result.to_json()
            out.mkdir(parents=True, exist_ok=True)
            (out / "plan.json").write_text(json.dumps(plan, indent=2), encoding="utf-8")
            shape = plan["model"]
            return StageRecord(
                "plan", key, str(out),
                params={"params": plan["params"], "tokens": plan["tokens"], "epochs": plan["epochs"], "law": plan["law"],
                        **{k: shape[k] for k in ("n_layer", "d_model", "n_head", "seq_len", "vocab_size")}},
                metrics={"predicted_loss": plan["predicted_loss"], "tokens_per_param": plan["tokens_per_param"]},
                info={"warnings": plan["warnings"]},
            )

        return [self.cached_or("plan", key, mode, produce)]

    def train(self, run_id: str, bundle: StageRecord, tokens: StageRecord, plan: StageRecord) -> list[StageRecord]:
        nproc = self.config.run.nproc_per_node
        key = digest({"train": self.config.train, "plan": plan.key, "tokens": tokens.key, "tokenizer": bundle.key,
                      "nproc": nproc, "code": code_version("train")})

        def produce(out: Path) -> StageRecord:
            config = self.config.train_config(
                tokens=tokens.output, tokenizer=bundle.output, output=str(out), plan=str(Path(plan.output) / "plan.json"),
                mlflow_run_id=run_id, tracking_uri=self.o.tracking_uri, experiment=self.config.run.experiment,
                register_as="",
            )
            from pretrain.loss_curve import read_metrics

            summary = self._train(config, nproc, out)
            _, evaluations = read_metrics(out / "metrics.jsonl")
            final = evaluations[max(evaluations)]["val_loss"] if evaluations else None
            return StageRecord(
                "train", key, str(out),
                params={"stop_reason": summary["stop_reason"], "model_params": summary["params"],
                        "world_size": summary["world_size"], "mlflow_run_id": summary["mlflow_run_id"]},
                metrics={"best_val_loss": summary["best_val_loss"], "final_val_loss": final,
                         "tokens_per_s": summary["tokens_per_s"], "steps": summary["steps"],
                         "tokens_seen": summary["tokens_seen"]},
                info={"mlflow_run_id": summary["mlflow_run_id"]},
            )

        return [self.cached_or("train", key, run_id, produce)]

    def _train(self, config, nproc: int, out: Path) -> dict:
        from pretrain.train import train

        if nproc == 1:
            return train(config)
        from pipelines.cli.train import torchrun_command, write_launch_file

        code = subprocess.call(torchrun_command(write_launch_file(config), nproc))
        if code != 0 or not (out / "summary.json").is_file():
            raise FlowError(f"train: torchrun exited with {code}; see the output above and {out}")
        return json.loads((out / "summary.json").read_text(encoding="utf-8"))

    def register(self, mode: str, trained: StageRecord) -> list[StageRecord]:
        spec = self.config.registration
        key = digest({"train": trained.key, "register": spec.model_dump(), "tracking_uri": self.o.tracking_uri,
                      "code": code_version("register")})

        def produce(out: Path) -> StageRecord:
            from pretrain.tracking import register_model

            best = Path(trained.output) / "checkpoints" / "best"
            if not best.is_dir():
                raise FlowError(f"register: {trained.output} has no best checkpoint (no evaluation ran)")
            version = register_model(self.o.tracking_uri, trained.info["mlflow_run_id"], spec.name,
                                     Path(trained.output) / "tokenizer", best, alias=spec.alias)
            return StageRecord("register", key, str(out),
                               params={"model_name": spec.name, "model_alias": spec.alias, "model_version": version,
                                       "model_uri": f"models:/{spec.name}@{spec.alias}"})

        return [self.cached_or("register", key, mode, produce)]


def run_flow(config: PipelineConfig, name: str, options: FlowOptions, tracking) -> FlowResult:
    """Run the pipeline's stages under ``tracking`` (a started
    :class:`~pipelines.run_tracking.PipelineTracking`); raises :class:`FlowError`."""
    flow = Flow(config, name, options, tracking)
    if config.plan is None and not flow.past("plan"):
        raise FlowError("the pipeline has no plan: section (the compute budget); add one or stop with --until tokenize",
                        exit_code=2)
    clean = flow.stage("clean", flow.clean, summary=flow.clean_summary)
    if not flow.past("validate"):
        flow.stage("validate", lambda mode: flow.validate(mode, clean),
                   lambda rs: [item for r in rs for item in flow.validation_artifacts(r)])
    if not flow.past("tokenizer"):
        bundle = flow.stage("tokenizer", lambda mode: flow.tokenizer(mode, clean),
                            lambda rs: [(Path(rs[0].output) / "manifest.json", "")])[0]
    if not flow.past("tokenize"):
        words: dict[str, int] = {}
        for c in flow.corpora(clean).values():
            words[c["domain"]] = words.get(c["domain"], 0) + c["words"]
        tokens = flow.stage("tokenize", lambda mode: flow.tokenize(mode, clean, bundle, words),
                            lambda rs: [(Path(rs[0].output) / "manifest.json", "")])[0]
    if not flow.past("plan"):
        plan = flow.stage("plan", lambda mode: flow.plan(mode, tokens),
                          lambda rs: [(Path(rs[0].output) / "plan.json", "")])[0]
    if not flow.past("train"):
        trained = flow.stage("train", lambda run_id: flow.train(run_id, bundle, tokens, plan))[0]
    if not flow.past("register"):
        flow.stage("register", lambda mode: flow.register(mode, trained))
    return _result(flow)


def _result(flow: Flow) -> FlowResult:
    """The parent run's comparable keys, from the stages that ran (see
    :data:`pipelines.run_tracking.PARENT_KEYS`)."""
    r = flow.records
    params: dict = {"pipeline": flow.name, "corpora": ",".join(c.name for c in flow.config.corpora)}
    metrics: dict = {}
    corpora = flow.corpora(r["clean"])
    for record in r["clean"]:
        params.update(record.params)
    by_domain: dict[str, dict] = {}
    for c in corpora.values():
        d = by_domain.setdefault(c["domain"], {"documents_in": 0, "kept": 0})
        d["documents_in"] += c["documents_in"]
        d["kept"] += c["kept"]
    for domain, d in by_domain.items():
        metrics[f"documents_in.{domain}"] = d["documents_in"]
        metrics[f"kept.{domain}"] = d["kept"]
        if d["documents_in"]:
            metrics[f"kept_ratio.{domain}"] = round(d["kept"] / d["documents_in"], 4)
    if "validate" in r:
        metrics["validate.blocking_failed"] = sum(x.metrics["blocking_failed"] for x in r["validate"])
        metrics["validate.warnings"] = sum(len(x.info["warnings"]) for x in r["validate"])
    if "tokenizer" in r:
        params["tokenizer.sha256"] = r["tokenizer"][0].params["sha256"]
        params["tokenizer.vocab_size"] = r["tokenizer"][0].params["vocab_size"]
    if "tokenize" in r:
        for k, v in r["tokenize"][0].metrics.items():
            if k.startswith("tokens."):
                metrics[k] = v
            elif k.startswith("fertility"):
                metrics["tokenizer." + k] = v
    if "plan" in r:
        params.update({f"plan.{k}": v for k, v in r["plan"][0].params.items()})
    if "train" in r:
        t = r["train"][0].metrics
        metrics.update({f"train.{k}": t[k] for k in ("best_val_loss", "final_val_loss", "tokens_per_s", "steps")})
    if "register" in r:
        params["model_uri"] = r["register"][0].params["model_uri"]
        params["model_version"] = r["register"][0].params["model_version"]
    ran = [s for s in r if flow.selected(s)]
    metrics["stages.cached"] = sum(all(x.cached for x in r[s]) for s in ran)
    metrics["stages.run"] = len(ran) - metrics["stages.cached"]
    metrics = {k: v for k, v in metrics.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}
    tags = {f"dapt_key.{stage}": ",".join(x.short for x in records) for stage, records in r.items()}
    return FlowResult(flow.tracking.parent_id, r, params, metrics, flow.o.tracking_uri, corpora, tags)
