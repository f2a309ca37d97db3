"""MLflow for ``dapt run``: one parent run per pipeline run, one nested child run per stage.

* The parent run carries what an ML engineer compares across runs (:data:`PARENT_KEYS`
  describes them); each child carries its stage's params, metrics and artifacts. A stage
  skipped because its output is cached still gets its child run, logging the cached
  record's values and the tag ``dapt_cached=true``, so every run of a pipeline has the
  same keys.
* A pipeline run that was killed is resumed into the same parent run: its id waits in
  ``WORK/mlflow-run.json`` until the run ends, and a child run is looked up by its
  ``dapt_stage`` tag before one is created, so a restart never duplicates a stage run.
* The server is checked before anything runs: unreachable is one line naming the URI.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from pipelines.stage_cache import StageRecord

RUN_FILE = "mlflow-run.json"
STAGE_TAG = "dapt_stage"
PIPELINE_TAG = "dapt_pipeline"

#: Documentation of the parent run's keys (``dapt runs compare`` shows what differs).
PARENT_KEYS = """\
params:  pipeline, corpora, corpus.<name>.digest, tokenizer.sha256, tokenizer.vocab_size,
         plan.params, plan.tokens, plan.epochs, plan.law, plan.n_layer, plan.d_model,
         plan.n_head, plan.seq_len, plan.vocab_size, model_uri, model_version
tags:    dapt_pipeline, dapt_kind=pipeline, dapt_key.<stage> (the stage outputs used)
metrics: documents_in.<domain>, kept.<domain>, kept_ratio.<domain>, tokens.<domain>,
         tokenizer.fertility, tokenizer.fertility.<domain>, validate.blocking_failed,
         validate.warnings, train.best_val_loss, train.final_val_loss, train.tokens_per_s,
         train.steps, stages.cached, stages.run"""


class TrackingUnavailable(RuntimeError):
    """The tracking server cannot be used; the message is one line for the user."""


def _local_artifacts(uri: str, experiment: str) -> str | None:
    """Beside a sqlite store (``DB_DIR/mlartifacts/EXPERIMENT``), not in whatever directory
    the first run happened to start in (MLflow's default ``./mlruns``)."""
    if not uri.startswith("sqlite:///"):
        return None
    return (Path(uri[len("sqlite:///"):]).absolute().parent / "mlartifacts" / experiment).as_uri()


def tracking_client(uri: str):
    """An ``MlflowClient`` that gives up on an unreachable server in seconds, not minutes
    (:data:`pretrain.tracking.CLIENT_ENV`)."""
    from pretrain.tracking import CLIENT_ENV

    for key, value in CLIENT_ENV.items():
        os.environ.setdefault(key, value)
    from mlflow import MlflowClient

    return MlflowClient(uri)


class PipelineTracking:
    def __init__(self, uri: str, experiment: str, pipeline: str, work: Path):
        self.uri = uri
        self.pipeline = pipeline
        self.work = work
        self.client = tracking_client(uri)
        try:
            self.experiment_id = self._experiment(experiment)
        except Exception as exc:  # any transport or store error: say what and where, once
            reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise TrackingUnavailable(
                f"MLflow tracking server {uri} is unreachable ({reason}); start it "
                "(infra/mlflow/start-local.sh) or point --tracking-uri / MLFLOW_TRACKING_URI at a running one"
            ) from None
        self.parent_id: str | None = None
        self.resumed = False

    def _experiment(self, name: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=_local_artifacts(self.uri, name))
        except Exception:
            # Two first runs of different pipelines at once: the other one created it.
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    # -- the parent run -------------------------------------------------------------
    def start(self, inputs_digest: str) -> str:
        """Open the parent run, or reopen the one a killed run of the same inputs left."""
        path = self.work / RUN_FILE
        if path.is_file():
            left = json.loads(path.read_text(encoding="utf-8"))
            if left.get("tracking_uri") == self.uri and left.get("inputs") == inputs_digest and self._exists(left["run_id"]):
                self.parent_id = left["run_id"]
                self.client.update_run(self.parent_id, status="RUNNING")
                self.resumed = True
                return self.parent_id
            if self._exists(left.get("run_id", "")):
                # The killed run had other inputs: it stays as it ended, marked so.
                self.client.set_terminated(left["run_id"], status="KILLED")
        run = self.client.create_run(
            self.experiment_id, run_name=f"{self.pipeline}-{time.strftime('%Y%m%d-%H%M%S')}",
            tags={PIPELINE_TAG: self.pipeline, "dapt_kind": "pipeline"},
        )
        self.parent_id = run.info.run_id
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"run_id": self.parent_id, "tracking_uri": self.uri, "inputs": inputs_digest}),
                        encoding="utf-8")
        return self.parent_id

    def _exists(self, run_id: str) -> bool:
        try:
            self.client.get_run(run_id)
            return True
        except Exception:  # deleted, or another store
            return False

    def finish(self, params: dict, metrics: dict, status: str, tags: dict | None = None) -> None:
        for key, value in (tags or {}).items():
            self.client.set_tag(self.parent_id, key, value)
        self.log(self.parent_id, params, metrics)
        self.client.set_terminated(self.parent_id, status=status)
        (self.work / RUN_FILE).unlink(missing_ok=True)

    # -- stage runs -----------------------------------------------------------------
    def stage_run(self, stage: str) -> tuple[str, bool]:
        """The child run of ``stage`` under the parent: (run id, already finished)."""
        found = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}' and tags.{STAGE_TAG} = '{stage}'",
            max_results=5,
        )
        if found:
            run = found[0]
            return run.info.run_id, run.info.status == "FINISHED"
        run = self.client.create_run(
            self.experiment_id, run_name=stage,
            tags={"mlflow.parentRunId": self.parent_id, STAGE_TAG: stage, PIPELINE_TAG: self.pipeline},
        )
        return run.info.run_id, False

    def log_stage(self, run_id: str, records: list[StageRecord], artifacts: list[tuple[Path, str]] = ()) -> None:
        """Params, metrics and artifacts of a finished stage; the run ends FINISHED."""
        params: dict = {}
        metrics: dict = {}
        for record in records:
            params.update(record.params)
            metrics.update(record.metrics)
        cached = all(r.cached for r in records)
        self.client.set_tag(run_id, "dapt_cached", str(cached).lower())
        self.client.set_tag(run_id, "dapt_keys", ",".join(r.short for r in records))
        self.log(run_id, params, metrics)
        for path, where in artifacts:
            if path.is_dir():
                self.client.log_artifacts(run_id, str(path), where)
            elif path.is_file():
                self.client.log_artifact(run_id, str(path), where or None)
        self.client.set_terminated(run_id, status="FINISHED")

    def fail_stage(self, run_id: str, message: str) -> None:
        self.client.set_tag(run_id, "dapt_error", message[:5000])
        self.client.set_terminated(run_id, status="FAILED")

    def log(self, run_id: str, params: dict, metrics: dict) -> None:
        """Everything in a few ``log_batch`` calls (one call per value costs ~50 ms on a server)."""
        from mlflow.entities import Metric, Param

        now = int(time.time() * 1000)
        existing = self.client.get_run(run_id).data.params
        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items()) if k not in existing]
        values = [Metric(k, float(v), now, 0) for k, v in sorted(metrics.items()) if v is not None]
        for i in range(0, max(len(items), len(values)), 100):
            self.client.log_batch(run_id, metrics=values[i : i + 100], params=items[i : i + 100])
