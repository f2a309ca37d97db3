"""``dapt runs list`` / ``compare`` read a tracking store; they never create one."""

from __future__ import annotations

import pytest

from pipelines.cli import main
from pipelines.runs import RunsError, compare_runs, list_runs


def test_a_missing_sqlite_store_is_named_and_not_created(tmp_path, capsys):
    missing = tmp_path / "mistyped.db"
    uri = f"sqlite:///{missing}"
    with pytest.raises(RunsError, match=r"mistyped\.db: no such tracking store"):
        list_runs(uri, "dapt")
    with pytest.raises(RunsError, match=r"mistyped\.db: no such tracking store"):
        compare_runs(uri, "a", "b")
    assert main(["runs", "list", "--tracking-uri", uri]) == 1
    assert "mistyped.db: no such tracking store" in capsys.readouterr().err
    assert not missing.exists()


def test_an_existing_store_without_the_experiment_says_so(tmp_path):
    from mlflow import MlflowClient

    store = tmp_path / "mlflow.db"
    MlflowClient(f"sqlite:///{store}").search_experiments()  # creates the store
    with pytest.raises(RunsError, match=r"no experiment 'dapt'"):
        list_runs(f"sqlite:///{store}", "dapt")
