"""The demo's scenario, end to end and smaller: what `make demo` shows, asserted.

Runs ``python -m demo`` in its own process (it configures Airflow before importing it, which
the test session has already done for its own Airflow home).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from driftloop.settings import PROJECT_ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_demo(where: Path, *args: str) -> dict:
    """``python -m demo *args`` in its own process and state; its JSON result, with its
    stdout and stderr."""
    out = where / "demo.json"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DRIFTLOOP_", "AIRFLOW"))}
    proc = subprocess.run(
        [sys.executable, "-m", "demo", *args, "--state-dir", str(where / "state"),
         "--port", str(_free_port()), "--json", str(out)],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(out.read_text())
    result["_stdout"] = proc.stdout
    result["_stderr"] = proc.stderr
    return result


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return run_demo(tmp_path_factory.mktemp("demo"), "--small")


def test_stable_traffic_retrains_nothing(demo: dict) -> None:
    stable = demo["phases"]["stable"]
    assert stable["decision"] == "no_retrain"
    assert stable["dag_state"] == "success"
    assert stable["tasks"]["submit_retrain"] in (None, "skipped")
    assert stable["drift"]["dataset_drift"] is False
    assert stable["drift"]["window"]["rows"] == demo["config"]["stable_rows"]


def test_drift_promotes_exactly_once_and_accuracy_recovers(demo: dict) -> None:
    drift = demo["phases"]["drift"]
    assert drift["decision"] == "retrain_parameters"
    assert drift["drift"]["dataset_drift"] is True
    assert drift["tasks"]["submit_retrain"] == "success"
    result = drift["retrain"]["result"]
    assert result["outcome"] == "promoted"
    assert (demo["champion_before"], demo["champion_after"]) == ("1", "2")
    promoted = [v for v, tags in demo["versions"].items()
                if tags.get("retrain_outcome") == "promoted"]
    assert promoted == ["2"]
    # The champion's accuracy fell on drifted traffic and the new one recovered it.
    before = _accuracy(drift["served"])
    after = _accuracy(demo["after"])
    assert before < 0.85 <= after
    assert set(demo["after"]["total_by_version"]) == {"2"}


def test_hot_swap_under_load_failed_no_request(demo: dict) -> None:
    """The claim "under load" holds: both versions answered background requests, at least
    100 of them the new one, and no request or label failed (a refused label fails)."""
    background = demo["background"]
    assert background["failed"] == 0, background["errors"][:5]
    assert background["labels_failed"] == 0, background["errors"][:5]
    assert background["labels_sent"] == background["sent"] - background["failed"]
    assert set(background["total_by_version"]) == {"1", "2"}
    assert background["total_by_version"]["1"] > 0
    assert background["total_by_version"]["2"] >= 100
    assert demo["time_to_recovery_s"] > 0
    assert "the hot swap happened under load" in demo["_stdout"]
    for phase in demo["phases"].values():
        assert phase["served"]["failed"] == phase["served"]["labels_failed"] == 0


def test_bad_data_is_refused_without_retrain(demo: dict) -> None:
    broken = demo["phases"]["broken"]
    assert broken["decision"] == "refused"
    assert broken["dag_state"] == "failed"
    assert broken["tasks"]["validate_window"] == "failed"
    assert broken["tasks"].get("submit_retrain") in (None, "upstream_failed")
    assert broken["validation"]["success"] is False
    assert "sepal_length" in broken["validation"]["summary"]
    assert Path(broken["validation"]["report"]).is_file()
    assert broken["validation"]["report_error"] is None
    assert "/reports/validation/driftloop_drift_monitor__" in broken["validation"]["report_url"]
    assert demo["artifacts"]["validation_report_url"] == broken["validation"]["report_url"]
    assert "the same, stored with the log (make up)" in demo["_stdout"]
    assert sorted(demo["versions"]) == ["1", "2"]  # nothing registered by the bad window


def test_lineage_leads_from_the_new_champion_to_its_dag_run_and_kfp_run(demo: dict) -> None:
    drift = demo["phases"]["drift"]
    tags = demo["lineage"]
    assert tags["trigger"] == "drift"
    assert tags["airflow_run_id"] == drift["dag_run_id"]
    assert tags["kfp_run_id"] == str(drift["retrain"]["result"]["kfp_run_id"])
    assert tags["kfp_run_name"] == drift["retrain"]["result"]["kfp_run_name"]
    assert Path(demo["artifacts"]["evaluation_report"]).is_file()


def test_the_user_sees_progress_and_a_summary(demo: dict) -> None:
    assert "time to recovery" in demo["_stdout"]
    assert "decisions of the drift monitor DAG" in demo["_stdout"]
    assert "drift monitor DAG on the drifted window" in demo["_stderr"]
    # Airflow's task logs go to a file, not to the user's terminal.
    assert "[DAG TEST]" not in demo["_stdout"] + demo["_stderr"]


def _accuracy(served: dict) -> float:
    pairs = [p for ps in served["pairs_by_version"].values() for p in ps]
    return sum(label == predicted for label, predicted in pairs) / len(pairs)
