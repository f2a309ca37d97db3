"""``dapt corpus add/list/show/remove`` through the real command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timezone

from conftest import FINANCE, MEDICAL, REPO

from pipelines.cli import main
from pipelines.registry import Registry


def _dapt(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_add_list_show_record_remove_round_trip(tmp_path, capsys):
    reg = str(tmp_path / "reg.json")
    code, out, err = _dapt(capsys, "corpus", "add", "finance-reuters", "--path", str(FINANCE), "--domain", "finance",
                           "--id-field", "id", "--title-field", "title", "--registry", reg)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == (
        "sampled 200 records (limit 200) from 1 of 1 matched files: 200 documents, 0 quarantined"
    )
    assert out.splitlines()[-1] == f"registered finance-reuters in {reg}"
    code, out, err = _dapt(capsys, "corpus", "add", "medquad", "--path", str(MEDICAL), "--domain", "medical",
                           "--sample", "20", "--registry", reg)
    assert code == 0 and "sampled 20 records (limit 20)" in out

    code, out, _ = _dapt(capsys, "corpus", "list", "--registry", reg)
    assert code == 0
    assert out.splitlines() == [
        "NAME             DOMAIN   FORMAT    DOCS IN  KEPT  TOKENS  LAST RUN",
        "finance-reuters  finance  jsonl.gz        -     -       -  -",
        "medquad          medical  jsonl.gz        -     -       -  -",
    ]

    Registry(reg).record_run("finance-reuters", "a1b2c3", documents_in=10955, kept=10134, tokens=4_812_345)
    code, out, _ = _dapt(capsys, "corpus", "list", "--registry", reg)
    row = out.splitlines()[1].split()
    assert row == ["finance-reuters", "finance", "jsonl.gz", "10,955", "10,134", "4,812,345", "a1b2c3",
                   datetime.now(timezone.utc).date().isoformat()]
    listed = json.loads(_dapt(capsys, "corpus", "list", "--json", "--registry", reg)[1])
    assert [e["config"]["name"] for e in listed] == ["finance-reuters", "medquad"]
    assert listed[0]["usage"]["kept"] == 10134 and listed[1]["usage"] is None

    code, out, _ = _dapt(capsys, "corpus", "show", "finance-reuters", "--registry", reg)
    assert code == 0
    lines = out.splitlines()
    fields = [line.split(None, 1) for line in lines]
    assert [["path", str(FINANCE)], ["id_field", "id"], ["title_field", "title"]] == [
        f for f in fields if f and f[0] in ("path", "id_field", "title_field")]
    assert any(line.startswith("sample check (") and line.endswith("passed") for line in lines)
    assert "  documents in 10,955, kept 10,134, tokens 4,812,345" in lines
    shown = json.loads(_dapt(capsys, "corpus", "show", "finance-reuters", "--json", "--registry", reg)[1])
    assert shown["config"]["path"] == [str(FINANCE)] and shown["check"]["documents"] == 200
    assert shown["usage"]["run_id"] == "a1b2c3"

    code, out, _ = _dapt(capsys, "corpus", "remove", "finance-reuters", "--registry", reg)
    assert (code, out) == (0, f"removed finance-reuters from {reg} (its files are untouched)\n")
    assert FINANCE.exists()
    code, out, err = _dapt(capsys, "corpus", "show", "finance-reuters", "--registry", reg)
    assert (code, out) == (1, "")
    assert err == f"dapt corpus show: no corpus 'finance-reuters' in the registry {reg}; registered: medquad\n"
    code, _, err = _dapt(capsys, "corpus", "remove", "finance-reuters", "--registry", reg)
    assert code == 1 and err.endswith("registered: medquad\n")


def test_add_refuses_with_the_reason_and_registers_nothing(tmp_path, capsys):
    reg = tmp_path / "reg.json"
    fake = tmp_path / "reuters.jsonl.gz"
    fake.write_text('{"id": "1", "text": "not compressed"}\n')
    code, out, err = _dapt(capsys, "corpus", "add", "fake", "--path", str(fake), "--domain", "finance",
                           "--registry", str(reg))
    assert code == 1
    assert err.startswith(
        f"dapt corpus add: refused fake: files_readable: cannot read {fake}: corrupt or truncated gzip"
    )
    assert len(err.splitlines()) == 1 and "quarantined: " in out
    assert not reg.exists()

    code, _, err = _dapt(capsys, "corpus", "add", "fin", "--path", str(FINANCE), "--domain", "finance",
                         "--text-field", "body", "--registry", str(reg))
    assert code == 1 and err.startswith("dapt corpus add: refused fin: text_field: 'body' missing or not a string "
                                        "in 200 of 200 sampled records")


def test_add_name_taken_and_usage_errors(tmp_path, capsys):
    reg = str(tmp_path / "reg.json")
    args = ["corpus", "add", "fin", "--path", str(FINANCE), "--domain", "finance", "--sample", "5", "--registry", reg]
    assert _dapt(capsys, *args)[0] == 0
    code, out, err = _dapt(capsys, *args)
    assert (code, out) == (1, "")
    assert err == f"dapt corpus add: corpus 'fin' is already registered in {reg}; pass --replace to replace it\n"
    assert _dapt(capsys, *args, "--replace", "--title-field", "title")[0] == 0
    assert Registry(reg).get("fin").config.title_field == "title"
    assert _dapt(capsys, *args, "--replace", "--max-record-bytes", "1048576")[0] == 0
    assert Registry(reg).get("fin").config.max_record_bytes == 2**20
    # The sample check reads with the limit: every sampled line is longer than 100 bytes.
    code, _, err = _dapt(capsys, *args, "--replace", "--max-record-bytes", "100")
    assert code == 1 and "quarantine_share" in err and "record longer than 100 bytes" in err

    code, _, err = _dapt(capsys, "corpus", "add", "Fin!", "--path", str(FINANCE), "--domain", "Finance",
                         "--registry", reg)
    assert code == 2 and err.splitlines() == [
        "dapt corpus add: name: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.-]*$' (got 'Fin!')",
        "dapt corpus add: domain: String should match pattern '^[a-z][a-z0-9_-]*$' (got 'Finance')",
    ]
    code, _, err = _dapt(capsys, "corpus", "add", "x", "--path", "data.csv", "--domain", "law", "--registry", reg)
    assert (code, err) == (2, "dapt corpus add: cannot tell the format of 'data.csv' from its name: pass --format\n")


def test_corrupt_registry_is_one_line_not_a_traceback(tmp_path, capsys):
    reg = tmp_path / "reg.json"
    reg.write_text('{"version": 1, "corpora": {"fin": ')
    for command in (["list"], ["show", "fin"], ["remove", "fin"],
                    ["add", "fin", "--path", str(FINANCE), "--domain", "finance"]):
        code, out, err = _dapt(capsys, "corpus", *command, "--registry", str(reg))
        assert (code, out) == (1, "")
        assert err == (f"dapt corpus {command[0]}: {reg}: corrupt corpus registry: not JSON (Expecting value at "
                       "line 1 column 35); fix or move the file\n")


def test_add_as_a_process_with_the_registry_from_the_environment(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / "finance.jsonl.gz").write_bytes(FINANCE.read_bytes())
    env = {**os.environ, "DAPT_REGISTRY": str(tmp_path / "team" / "registry.json"),
           "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-m", "pipelines.cli", "corpus", "add", "fin", "--path", "raw/",
                           "--format", "jsonl.gz", "--domain", "finance", "--sample", "50"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and "apitools" not in proc.stderr
    assert proc.stdout.splitlines()[-1] == f"registered fin in {tmp_path / 'team' / 'registry.json'}"
    stored = json.loads((tmp_path / "team" / "registry.json").read_text())
    assert stored["corpora"]["fin"]["config"]["path"] == [str(tmp_path / "raw")]
    assert stored["corpora"]["fin"]["check"]["files_sampled"] == [str(tmp_path / "raw" / "finance.jsonl.gz")]
