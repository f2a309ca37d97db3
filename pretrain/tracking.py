"""MLflow tracking of a training run, from rank 0 only, that never slows or stops training.

* Metrics are buffered and sent by a background thread in ``log_batch`` calls of up to
  1,000 metrics every few seconds: against a server one ``log_metric`` call costs ~53 ms,
  ``log_batch`` of 1,000 costs 0.14 s (../shared/STACK.md), so the loop never waits on
  the network.
* When the server is unreachable the thread warns once, keeps the metrics and retries;
  at the end of the run whatever could still not be sent goes to
  ``RUNDIR/mlflow_pending.jsonl``, which the next :class:`Tracker` on that run directory
  (a resumed run) sends first. ``RUNDIR/metrics.jsonl`` holds every metric locally anyway.
* A resumed run logs into the same MLflow run: the id is in each checkpoint's state and
  in ``RUNDIR/mlflow_run.json``.
* At the end: artifacts (loss curve, plan, config, summary, tokenizer bundle, best
  checkpoint), and the model as a pyfunc (:mod:`pretrain.mlflow_model`, logged as
  "models from code", so loading it unpickles nothing) registered under ``register_as``
  with the alias ``candidate``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

#: The client's own retries would block a flush for minutes (7 retries, backoff 2 s).
_CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
               "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
BATCH = 1000
FLUSH_SECONDS = 2.0
FINAL_FLUSH_SECONDS = 30.0
ALIAS = "candidate"
PENDING = "mlflow_pending.jsonl"
RUN_FILE = "mlflow_run.json"


def _warn(message: str) -> None:
    print(f"dapt train: warning: {message}", file=sys.stderr, flush=True)


class TrackingError(RuntimeError):
    """The tracking server cannot be used at the start of a run, as one line."""


class Tracker:
    def __init__(
        self, rundir: Path, tracking_uri: str | None, experiment: str, run_id: str | None, system_every: float = 10.0
    ):
        for key, value in _CLIENT_ENV.items():
            os.environ.setdefault(key, value)
        import mlflow
        from mlflow import MlflowClient

        self.rundir = rundir
        self.uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
        mlflow.set_tracking_uri(self.uri)
        self.client = MlflowClient(self.uri)
        try:
            self.run_id = self._open_run(rundir, experiment, run_id)
        except Exception as exc:
            raise TrackingError(
                f"MLflow at {self.uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]} "
                "(start the server, or train with --no-mlflow)"
            ) from None
        self._pending: list = []
        # What tracking costs the run: the loop's time in log_metrics plus the CPU time of
        # the flush thread, which holds the GIL while it serialises and sends.
        self.loop_seconds = 0.0
        self.flush_cpu_seconds = 0.0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._down_since: float | None = None
        self._load_pending()
        self._thread = threading.Thread(target=self._loop, name="mlflow-flush", daemon=True)
        self._thread.start()
        self._system = self._start_system_metrics(system_every)

    def _open_run(self, rundir: Path, experiment: str, run_id: str | None) -> str:
        run_file = rundir / RUN_FILE
        if run_id is None and run_file.is_file():
            run_id = json.loads(run_file.read_text(encoding="utf-8"))["run_id"]
        if run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run_id = self.client.create_run(experiment_id, run_name=rundir.name).info.run_id
            run_file.write_text(json.dumps({"run_id": run_id, "tracking_uri": self.uri}), encoding="utf-8")
        else:
            self.client.update_run(run_id, status="RUNNING")
        return run_id

    def _start_system_metrics(self, every: float):
        try:
            from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

            monitor = SystemMetricsMonitor(
                self.run_id, sampling_interval=every, resume_logging=True, tracking_uri=self.uri
            )
            monitor.start()
            return monitor
        except Exception as exc:  # psutil missing or a platform without sensors: metrics only
            _warn(f"no MLflow system metrics ({exc})")
            return None

    def log_params(self, params: dict) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in params.items()]
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])

    def log_metrics(self, metrics: dict, step: int) -> None:
        from mlflow.entities import Metric

        started = time.perf_counter()
        now = int(time.time() * 1000)
        with self._lock:
            self._pending.extend(Metric(k, float(v), now, step) for k, v in metrics.items() if v is not None)
        self.loop_seconds += time.perf_counter() - started

    def _flush_once(self) -> bool:
        """Send one batch; False when the server did not take it (the batch stays queued)."""
        with self._lock:
            batch = self._pending[:BATCH]
        if not batch:
            return True
        try:
            self.client.log_batch(self.run_id, metrics=batch)
        except Exception as exc:
            if self._down_since is None:
                self._down_since = time.monotonic()
                _warn(f"MLflow at {self.uri} unreachable ({type(exc).__name__}); training goes on, metrics are buffered")
            return False
        with self._lock:
            del self._pending[: len(batch)]
        if self._down_since is not None:
            _warn(f"MLflow reachable again after {time.monotonic() - self._down_since:.0f} s; buffered metrics sent")
            self._down_since = None
        return True

    def _loop(self) -> None:
        while not self._stop.wait(FLUSH_SECONDS):
            started = time.thread_time()
            while self._flush_once() and self._pending:
                pass
            self.flush_cpu_seconds += time.thread_time() - started

    @property
    def overhead_seconds(self) -> float:
        return self.loop_seconds + self.flush_cpu_seconds

    def flush(self, deadline_s: float) -> bool:
        """Send everything queued, retrying until ``deadline_s`` passes; True when done."""
        end = time.monotonic() + deadline_s
        while self._pending:
            if not self._flush_once():
                if time.monotonic() > end:
                    return False
                time.sleep(1.0)
        return True

    def _load_pending(self) -> None:
        from mlflow.entities import Metric

        path = self.rundir / PENDING
        if path.is_file():
            rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
            self._pending.extend(Metric(r["key"], r["value"], r["timestamp"], r["step"]) for r in rows)
            path.unlink()

    def _save_pending(self) -> None:
        with open(self.rundir / PENDING, "a", encoding="utf-8") as f:
            for m in self._pending:
                f.write(json.dumps({"key": m.key, "value": m.value, "timestamp": m.timestamp, "step": m.step}) + "\n")
        _warn(
            f"{len(self._pending)} metrics could not reach MLflow; kept in {self.rundir / PENDING}, "
            "sent by the next run on this directory (dapt train --output it again)"
        )

    def finish(self, summary: dict, artifacts: list[Path], tokenizer_dir: Path, best_dir: Path, register_as: str | None) -> None:
        self._stop.set()
        self._thread.join()
        if self._system:
            self._system.finish()
        for key in ("best_val_loss", "best_step", "steps", "tokens_seen"):
            if summary.get(key) is not None:
                self.log_metrics({f"final_{key}": summary[key]}, summary["steps"])
        if not self.flush(FINAL_FLUSH_SECONDS):
            self._save_pending()
            return
        try:
            self._log_artifacts(artifacts, tokenizer_dir, best_dir)
            if register_as and best_dir.is_dir():
                self._register(register_as, tokenizer_dir, best_dir)
            self.client.set_terminated(self.run_id, status="FINISHED")
        except Exception as exc:
            _warn(f"MLflow artifacts or registration failed ({type(exc).__name__}: {exc}); the run directory has them")

    def _log_artifacts(self, artifacts: list[Path], tokenizer_dir: Path, best_dir: Path) -> None:
        for path in artifacts:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.log_artifacts(self.run_id, str(tokenizer_dir), "tokenizer")
        if best_dir.is_dir():
            self.client.log_artifacts(self.run_id, str(best_dir), "checkpoint-best")

    def _register(self, name: str, tokenizer_dir: Path, best_dir: Path) -> None:
        import mlflow
        from mlflow.models import infer_signature

        import pretrain
        import tokenizer
        from pretrain import mlflow_model

        signature = infer_signature(["some text"], ["a continuation"], params=mlflow_model.DEFAULT_PARAMS)
        with mlflow.start_run(run_id=self.run_id):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=mlflow_model.__file__,
                artifacts={"checkpoint": str(best_dir), "tokenizer": str(tokenizer_dir)},
                code_paths=[os.path.dirname(pretrain.__file__), os.path.dirname(tokenizer.__file__)],
                pip_requirements=mlflow_model.requirements(),
                signature=signature,
            )
        version = mlflow.register_model(info.model_uri, name)
        self.client.set_registered_model_alias(name, ALIAS, version.version)
