"""MLflow tracking of a training run, from rank 0 only, that never slows or stops training.

* Metrics are buffered and sent by a background thread in ``log_batch`` calls of up to
  1,000 metrics every few seconds: against a server one ``log_metric`` call costs ~53 ms,
  ``log_batch`` of 1,000 costs 0.14 s (../shared/STACK.md), so the loop never waits on
  the network.
* When the server is unreachable the thread warns once, keeps the metrics and retries;
  at the end of the run whatever could still not be sent goes to
  ``RUNDIR/mlflow_pending.jsonl``, which the next :class:`Tracker` on that run directory
  sends first, each metric to the run it belongs to.
* A resumed run logs into the same MLflow run (its id is in each checkpoint's state and
  in ``RUNDIR/mlflow_run.json``), unless it is given a run (``TrainConfig.mlflow_run_id``:
  ``dapt run`` creates one as a child of the pipeline run).
* Each (metric, step) reaches the run once. The steps after a resumed checkpoint are
  trained again: what the run already holds of them is not sent again. What it lacks of
  the steps up to the checkpoint (metrics still buffered when the process was killed,
  or all of them in a run new to this training) is sent from ``RUNDIR/metrics.jsonl``.
  The run's latest step of each metric tells both apart: metrics are sent in the order
  they are logged, which is step order, so a run holds every step of a metric up to its
  latest one. That costs one ``get_run`` at the start (~20 ms against a local server; the
  full history of one metric of a 20,000-step run takes 1.7 s).
* Params are logged once: the ones the run does not have yet.
* At the end: artifacts (loss curve, plan, config, summary, tokenizer bundle, best
  checkpoint), and :func:`register_model`, which logs the model as a pyfunc
  (:mod:`pretrain.mlflow_model`, "models from code", so loading it unpickles nothing) and
  registers it under ``register_as`` with the alias ``candidate``.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from pathlib import Path

#: The client's own retries would block a flush for minutes (7 retries, backoff 2 s). Set
#: while a run trains; artifacts and registration at the end use MLflow's defaults, as a
#: large checkpoint upload needs them.
CLIENT_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
              "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
BATCH = 1000
FLUSH_SECONDS = 2.0
FINAL_FLUSH_SECONDS = 30.0
#: How long a failing run waits for its metrics before leaving them in the pending file.
ABORT_FLUSH_SECONDS = 5.0
ALIAS = "candidate"
PENDING = "mlflow_pending.jsonl"
RUN_FILE = "mlflow_run.json"


def default_tracking_uri(tracking_uri: str | None = None) -> str:
    return tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def _warn(message: str) -> None:
    print(f"dapt train: warning: {message}", file=sys.stderr, flush=True)


class TrackingError(RuntimeError):
    """MLflow cannot be used (at the start of a run, or to register a model), as one line."""


class Tracker:
    def __init__(
        self, rundir: Path, tracking_uri: str | None, experiment: str, run_id: str | None, system_every: float = 10.0
    ):
        # Only the keys set here are removed again: a caller's own settings stay.
        self._env_set = [key for key in CLIENT_ENV if key not in os.environ]
        os.environ.update({key: CLIENT_ENV[key] for key in self._env_set})
        from mlflow import MlflowClient

        self.rundir = rundir
        self.uri = default_tracking_uri(tracking_uri)
        self.client = MlflowClient(self.uri)
        try:
            self.run_id = self._open_run(experiment, run_id)
            run = self.client.get_run(self.run_id)
        except Exception as exc:
            self._restore_env()
            raise TrackingError(
                f"MLflow at {self.uri}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]} "
                "(start the server, or train with --no-mlflow)"
            ) from None
        self._params = dict(run.data.params)
        # RunData.metrics has the values only; its proto has each metric's latest step.
        self._logged_through = {m.key: m.step for m in run.data.to_proto().metrics}
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

    def _open_run(self, experiment: str, run_id: str | None) -> str:
        run_file = self.rundir / RUN_FILE
        if run_id is None and run_file.is_file():
            run_id = json.loads(run_file.read_text(encoding="utf-8"))["run_id"]
        if run_id is None:
            found = self.client.get_experiment_by_name(experiment)
            experiment_id = found.experiment_id if found else self.client.create_experiment(experiment)
            run_id = self.client.create_run(experiment_id, run_name=self.rundir.name).info.run_id
        else:
            self.client.update_run(run_id, status="RUNNING")
        run_file.write_text(json.dumps({"run_id": run_id, "tracking_uri": self.uri}), encoding="utf-8")
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
        """Log the params the run does not have; one it has with another value stays as
        it is (MLflow params cannot change), with a warning."""
        from mlflow.entities import Param

        items = []
        for key, value in params.items():
            value = str(value)[:6000]
            if key not in self._params:
                items.append(Param(key, value))
            elif self._params[key] != value:
                _warn(f"MLflow run {self.run_id} keeps param {key}={self._params[key]} (this run: {value})")
        for i in range(0, len(items), 100):
            self.client.log_batch(self.run_id, params=items[i : i + 100])
        self._params.update((p.key, p.value) for p in items)

    def log_metrics(self, metrics: dict, step: int) -> None:
        """Queue ``metrics`` at ``step``, except those the run already holds at that step."""
        from mlflow.entities import Metric

        started = time.perf_counter()
        now = int(time.time() * 1000)
        with self._lock:
            self._pending.extend(
                Metric(k, float(v), now, step) for k, v in metrics.items()
                if v is not None and step > self._logged_through.get(k, -1)
            )
        self.loop_seconds += time.perf_counter() - started

    def backfill(self, newest_first) -> None:
        """Queue what the run lacks of the steps up to the resumed checkpoint and is not
        queued already. ``newest_first``: ``(metrics, step)`` of the local record from
        the last step back; read until a step the run holds whole, as it holds every
        step before that one (metrics are sent in step order), so a resume into the same
        run reads a few lines and one into a new run reads them all."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        with self._lock:
            queued = {(m.key, m.step) for m in self._pending}
        missing = []
        for metrics, step in newest_first:
            lacking = [k for k, v in metrics.items() if v is not None and step > self._logged_through.get(k, -1)]
            if not lacking:
                break
            missing.extend(
                Metric(k, float(metrics[k]), now, step) for k in reversed(lacking) if (k, step) not in queued
            )
        with self._lock:
            self._pending.extend(reversed(missing))

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
        """Queue the metrics a previous run on this directory could not send; those of
        another MLflow run (the directory was given a new one) go to theirs now."""
        from mlflow.entities import Metric

        path = self.rundir / PENDING
        if not path.is_file():
            return
        others: dict[str, list] = {}
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                metric = Metric(r["key"], r["value"], r["timestamp"], r["step"])
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line cut short by a kill while the file was written
            # A row without run_id was written before rows had one, for this directory's run.
            if r.get("run_id", self.run_id) == self.run_id:
                self._pending.append(metric)
            else:
                others.setdefault(r["run_id"], []).append(metric)
        unsent = []
        for run_id, metrics in others.items():
            for i in range(0, len(metrics), BATCH):
                try:
                    self.client.log_batch(run_id, metrics=metrics[i : i + BATCH])
                except Exception:
                    unsent.extend((run_id, m) for m in metrics[i:])
                    break
        path.unlink()
        if unsent:
            self._save_pending(unsent)

    def _save_pending(self, metrics: list[tuple[str, object]]) -> None:
        with open(self.rundir / PENDING, "a", encoding="utf-8") as f:
            for run_id, m in metrics:
                f.write(json.dumps({"run_id": run_id, "key": m.key, "value": m.value, "timestamp": m.timestamp,
                                    "step": m.step}) + "\n")
        _warn(
            f"{len(metrics)} metrics could not reach MLflow; kept in {self.rundir / PENDING}, "
            "sent by the next run on this directory (dapt train --output it again)"
        )

    def _stop_logging(self, deadline_s: float) -> bool:
        """Stop the flush thread and the system metrics, send what is queued within
        ``deadline_s`` (else keep it in the pending file) and put the client settings of
        this process back; True when everything was sent."""
        self._stop.set()
        self._thread.join()
        if self._system:
            self._system.finish()
            self._last_system_sample()
        sent = self.flush(deadline_s)
        if not sent:
            self._save_pending([(self.run_id, m) for m in self._pending])
            self._pending = []
        self._restore_env()
        return sent

    def _last_system_sample(self) -> None:
        """One more sample as the run ends: MLflow's monitor publishes only after a whole
        sampling interval, so a run shorter than ``system_metrics_every`` had none at all."""
        try:
            self._system.collect_metrics()
            self._system.publish_metrics(self._system.aggregate_metrics())
            self._system.mlflow_logger.flush()
        except Exception as exc:  # a tracking server gone away: the run's metrics still go on
            _warn(f"no final MLflow system-metrics sample ({type(exc).__name__}: {exc})")

    def _restore_env(self) -> None:
        for key in self._env_set:
            os.environ.pop(key, None)
        self._env_set = []

    def abort(self) -> None:
        """The run failed: stop logging, keep what was not sent, mark the run FAILED."""
        self._stop_logging(ABORT_FLUSH_SECONDS)
        try:
            self.client.set_terminated(self.run_id, status="FAILED")
        except Exception as exc:
            _warn(f"could not mark MLflow run {self.run_id} FAILED ({type(exc).__name__})")

    def finish(self, summary: dict, artifacts: list[Path], tokenizer_dir: Path, best_dir: Path, register_as: str | None) -> None:
        for key in ("best_val_loss", "best_step", "steps", "tokens_seen"):
            if summary.get(key) is not None:
                self.log_metrics({f"final_{key}": summary[key]}, summary["steps"])
        if not self._stop_logging(FINAL_FLUSH_SECONDS):
            return
        try:
            self._log_artifacts(artifacts, tokenizer_dir, best_dir)
            if register_as and best_dir.is_dir():
                register_model(self.uri, self.run_id, register_as, tokenizer_dir, best_dir)
        except Exception as exc:
            _warn(f"MLflow artifacts or registration failed ({type(exc).__name__}: {exc}); the run directory has them")
        try:
            self.client.set_terminated(self.run_id, status="FINISHED")
        except Exception as exc:
            _warn(f"could not mark MLflow run {self.run_id} FINISHED ({type(exc).__name__})")

    def _log_artifacts(self, artifacts: list[Path], tokenizer_dir: Path, best_dir: Path) -> None:
        for path in artifacts:
            if path.is_file():
                self.client.log_artifact(self.run_id, str(path))
        self.client.log_artifacts(self.run_id, str(tokenizer_dir), "tokenizer")
        if best_dir.is_dir():
            self.client.log_artifacts(self.run_id, str(best_dir), "checkpoint-best")


def register_model(
    tracking_uri: str | None, run_id: str, name: str, tokenizer_dir: Path, best_dir: Path, alias: str = ALIAS
) -> int:
    """Log the checkpoint ``best_dir`` and its tokenizer bundle ``tokenizer_dir`` as a
    pyfunc model of the run ``run_id``, register it as ``name`` and point ``alias`` at the
    new version; return the version. Works outside a training run (``dapt run``'s register
    stage) and in a process with a run of its own active (the model is logged in a nested
    run context; that process's active run and tracking URI are as they were afterwards).
    Raises :class:`TrackingError`."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    import pretrain
    import tokenizer
    from pretrain import mlflow_model

    uri = default_tracking_uri(tracking_uri)
    for directory in (Path(best_dir), Path(tokenizer_dir)):
        if not directory.is_dir():
            raise TrackingError(f"{directory}: no such directory, nothing to register")
    previous_uri = mlflow.get_tracking_uri()
    # log_model and register_model work on the fluent API's run and tracking URI only.
    mlflow.set_tracking_uri(uri)
    try:
        signature = infer_signature(["some text"], ["a continuation"], params=mlflow_model.DEFAULT_PARAMS)
        with mlflow.start_run(run_id=run_id, nested=mlflow.active_run() is not None):
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=mlflow_model.__file__,
                artifacts={"checkpoint": str(best_dir), "tokenizer": str(tokenizer_dir)},
                code_paths=[os.path.dirname(pretrain.__file__), os.path.dirname(tokenizer.__file__)],
                pip_requirements=mlflow_model.requirements(),
                signature=signature,
            )
        version = mlflow.register_model(info.model_uri, name)
        MlflowClient(uri).set_registered_model_alias(name, alias, version.version)
    except Exception as exc:
        raise TrackingError(
            f"MLflow at {uri}: registering {name} from run {run_id} failed: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}"
        ) from None
    finally:
        mlflow.set_tracking_uri(previous_uri)
    return int(version.version)
