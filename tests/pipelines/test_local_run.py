"""The whole retrain pipeline through KFP's local runner (``run-local``), against a real
MLflow store (SQLite) and a real prediction log: failures and rejections.

The runs with a live server (new champion served, broken version refused) are in
test_live_server.py. Each run costs tens of seconds: one pipeline run per test.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import pytest

from tests.pipelines.conftest import (
    MODEL,
    PETAL_SHIFT,
    WINDOW,
    LocalLoop,
    free_port,
    iris_rows,
    iris_spec_with,
)

pytestmark = pytest.mark.slow

WINDOW_PARAMS = (f"window_start={WINDOW[0]}", f"window_end={WINDOW[1]}")


@pytest.mark.full
def test_invalid_data_fails_at_validate_data_and_registers_nothing(loop: LocalLoop) -> None:
    """The whole-run form (make test-full) of what make test checks by step: the validation
    failure and its report (tests/pipelines/test_steps.py), the failing step named by
    run-local, and the drift monitor refusing invalid data (tests/airflow/test_dag_runs.py).
    """
    # A unit error upstream: petal lengths arrive in millimetres.
    loop.log_labeled_rows(iris_rows(120, seed=3, scale={"petal_length": 10.0}))
    before = loop.versions()
    summary, proc = loop.run_pipeline("trigger=drift", *WINDOW_PARAMS, "airflow_run_id=r-bad",
                                      "deploy_target=local")

    assert proc.returncode == 1
    assert summary["status"] == "failed"
    assert summary["failed_step"] == "validate_data"
    assert summary["error"].startswith("invalid data (production rows: ")
    assert "column 'petal_length'" in summary["error"]
    # Nothing registered, nothing moved.
    assert loop.versions() == before == {"1": before["1"]}
    assert (summary["champion_before"], summary["champion_after"]) == ("1", "1")
    assert summary["promoted"] is False and summary["new_version"] is None
    assert loop.alias("champion") == "1"
    # Train never ran: no MLflow run beyond the bootstrap's.
    runs = loop.client().search_runs([e.experiment_id for e in
                                      loop.client().search_experiments()])
    assert [r.data.tags.get("trigger") for r in runs] == ["bootstrap"]
    # The validation report names the failing expectation; it is where the error says.
    report = Path(summary["artifacts"]) / "validate-data" / "report"
    assert str(report) in summary["error"]
    html = report.read_text()
    assert "INVALID" in html and "petal_length" in html
    assert "stored with champion v1" in html
    # The log names the step in one marker line (what a KFP UI user reads).
    assert 'DRIFTLOOP_STEP_FAILED {"step": "validate_data"' in proc.stderr


def test_worse_challenger_is_rejected_and_recorded_without_alias(
    loop: LocalLoop, tmp_path: Path,
) -> None:
    # A stump: above a lowered floor (0.5), far below the champion.
    spec = iris_spec_with(tmp_path / "stump.yaml", "sklearn.tree.DecisionTreeClassifier",
                          "{max_depth: 1}")
    summary, proc = loop.run_pipeline(f"spec={spec}", "trigger=manual", "min_value=0.5",
                                      "airflow_run_id=manual__worse", "deploy_target=local")

    assert proc.returncode == 0, proc.stderr[-3000:]
    assert summary["status"] == "succeeded"  # the run worked: it said no
    assert summary["outcome"] == "rejected" and summary["promoted"] is False
    assert (summary["champion_before"], summary["champion_after"]) == ("1", "1")
    assert summary["new_version"] == "2"
    gate = summary["gate"]
    assert gate["passed"] is False
    assert gate["min_value"] == "0.5"  # the run's override, not the spec's 0.85
    assert gate["reason"].startswith("rejected: accuracy 0.")
    assert "vs 0.9000 for champion v1 on the same 30 holdout rows: -0." in gate["reason"]
    assert "worse than the champion by more than the 0.02 allowed; exact McNemar p=" \
        in gate["reason"]
    assert gate["reason"].endswith("; floor 0.5 cleared")
    # Registered, unaliased, tagged with why; the champion and its aliases are untouched.
    tags = loop.versions()["2"]
    assert tags["retrain_outcome"] == "rejected" and tags["gate_passed"] == "false"
    assert tags["gate_reason"] == gate["reason"]
    assert (tags["gate_outcome"], tags["gate_test"]) == ("rejected", "mcnemar")
    low, high = json.loads(tags["gate_interval"])
    assert low < high < -0.02 and float(tags["gate_p_value"]) < 0.05
    assert tags["trigger"] == "manual" and tags["airflow_run_id"] == "manual__worse"
    assert tags["kfp_run_name"].startswith("driftloop-retrain-") and tags["kfp_run_id"]
    assert loop.alias("champion") == "1" and loop.alias("previous") is None
    mv = loop.client().get_model_version(MODEL, "2")
    assert list(mv.aliases) == []
    # The rejection branch ran, the promotion branch did not.
    run_dir = Path(summary["artifacts"])
    assert (run_dir / "record-rejection").is_dir()
    assert not (run_dir / "register-champion").exists()
    assert not (run_dir / "deploy-model").exists()
    report = (run_dir / "evaluate-model" / "report").read_text()
    assert f"<p class='verdict fail'>{escape(gate['reason'])}</p>" in report
    # Both reports are on the challenger's MLflow run as .html (the MLflow UI renders them),
    # and the version links them (issue 15, finding 5).
    client = loop.client()
    run_id = mv.run_id
    held = {f.path for f in client.list_artifacts(run_id, "reports")}
    assert held == {"reports/evaluation.html", "reports/validation.html"}
    assert tags["evaluation_report"] == f"runs:/{run_id}/reports/evaluation.html"
    assert tags["validation_report"] == f"runs:/{run_id}/reports/validation.html"
    import mlflow.artifacts

    logged = mlflow.artifacts.load_text(tags["evaluation_report"])
    assert logged == report
    assert "valid" in mlflow.artifacts.load_text(tags["validation_report"]).lower()


@pytest.mark.full
def test_deploy_to_a_server_that_is_down_restores_the_champion_alias(loop: LocalLoop) -> None:
    """make reliability only: make test shows a failed local deploy rolled back in a whole
    run (test_live_server.py, a version the server refuses) and an unreachable server at the
    deployer (tests/unit/test_deploy.py)."""
    loop.log_labeled_rows(iris_rows(240, seed=1, shift=PETAL_SHIFT))
    down = f"http://127.0.0.1:{free_port()}"
    summary, proc = loop.run_pipeline(
        "trigger=drift", *WINDOW_PARAMS, "airflow_run_id=scheduled__down",
        "deploy_target=local", "deploy_timeout_s=5",
        env={"DRIFTLOOP_SERVER_URL": down, "DRIFTLOOP_ADMIN_TOKEN": "s3cret"},
    )

    assert proc.returncode == 1
    assert summary["status"] == "failed" and summary["failed_step"] == "deploy_model"
    assert summary["error"].startswith(f"serving at {down} is unreachable")
    assert summary["error"].endswith("champion alias restored to v1")
    # The challenger was good (gate passed, registered), but it never served: the registry
    # says v1 is champion, as before, and v2 says why it is not.
    assert summary["gate"]["passed"] is True
    assert (summary["champion_before"], summary["champion_after"]) == ("1", "1")
    assert loop.alias("champion") == "1" and loop.alias("previous") is None
    tags = loop.versions()["2"]
    assert tags["retrain_outcome"] == "rolled_back"
    assert tags["deploy_target"] == "local"
    assert tags["deploy_error"].startswith(f"serving at {down} is unreachable")
    assert summary["outcome"] == "rolled_back"
