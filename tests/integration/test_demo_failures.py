"""The demo's report can say "failed": a dead background thread, a refused request or label,
each reaches stderr and the exit code (the whole demo's happy path is test_demo.py)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import pandas as pd
import pytest

from demo.__main__ import _failures, _watch_threads
from demo.scenario import PhaseResult, _verdict, swapped_under_load, under_load_verdict
from demo.traffic import BackgroundFailed, BackgroundTraffic, Served
from driftloop.spec import load_spec
from tests.conftest import IRIS_SPEC


# The thread dies on purpose; pytest would report its traceback as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_background_client_that_dies_fails_the_demo() -> None:
    """Rows without the spec's columns make the client raise inside its thread."""
    rows = pd.DataFrame({"not_a_feature": [1.0, 2.0]})
    background = BackgroundTraffic("http://127.0.0.1:9", load_spec(IRIS_SPEC), rows, 0.0)
    background.start()
    background.join(timeout=30)
    with pytest.raises(BackgroundFailed) as err:
        background.stop()
    assert "the background traffic died" in str(err.value)
    assert "KeyError" in str(err.value)


def test_refused_requests_and_labels_are_failures_with_their_reason() -> None:
    clean = Served(sent=10, labels_sent=10, total_by_version={"1": 10})
    refused = Served(sent=10, failed=2, labels_sent=8, labels_failed=8,
                     errors=["503: no model", "POST /feedback 404: unknown request_id"])
    result = SimpleNamespace(phases={"stable": _phase(clean)}, background=refused, after=clean)
    (failure,) = _failures(result)
    assert failure.startswith("background traffic: 2 of 10 requests and 8 of 8 labels failed")
    assert "POST /feedback 404" in failure
    clean_result = SimpleNamespace(phases={"stable": _phase(clean)}, background=clean,
                                   after=clean)
    assert _failures(clean_result) == []


def test_a_failed_retrain_fails_the_demo_and_its_summary_says_so() -> None:
    clean = Served(sent=10, labels_sent=10, total_by_version={"1": 10})
    drift = _phase(clean, submit_retrain="failed")
    drift.drift = {"reasons": ["drift in x"]}
    result = SimpleNamespace(phases={"drift": drift}, background=clean, after=clean)
    (failure,) = _failures(result)
    assert failure.startswith("drift phase: the retrain failed in DAG run run-1")
    assert _verdict(drift) == ("DRIFT: drift in x → retrain FAILED (its error is in the "
                               "Airflow task log)")


def _phase(served: Served, **tasks: str) -> PhaseResult:
    now = datetime.now(UTC)
    return PhaseResult("stable", (now, now), served, dag_run_id="run-1", tasks=dict(tasks))


def test_under_load_is_claimed_only_when_both_versions_answered_and_nothing_failed() -> None:
    both = Served(sent=300, total_by_version={"1": 150, "2": 150})
    assert swapped_under_load(both, "1", "2")
    assert under_load_verdict(both, "1", "2") == "the hot swap happened under load"
    cases = [
        Served(sent=150, total_by_version={"1": 150}),             # v2 never answered
        Served(sent=160, total_by_version={"1": 100, "2": 60}),    # under 100 by v2
        Served(sent=300, failed=1, total_by_version={"1": 150, "2": 149}),
        Served(sent=300, labels_failed=1, total_by_version={"1": 150, "2": 150}),
        Served(sent=150, total_by_version={"2": 150}),             # v1 never answered
    ]
    for served in cases:
        assert not swapped_under_load(served, "1", "2"), served
        assert "NOT shown under load" in under_load_verdict(served, "1", "2")
    assert "no swap happened" in under_load_verdict(both, "1", "1")


# The thread dies on purpose; pytest would report its traceback as a warning.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_any_thread_that_dies_is_kept_for_the_exit_code() -> None:
    previous = threading.excepthook
    try:
        died = _watch_threads()
        thread = threading.Thread(target=lambda: 1 / 0, name="worker")
        thread.start()
        thread.join()
        assert len(died) == 1
        assert died[0].startswith("thread 'worker' died") and "ZeroDivisionError" in died[0]
    finally:
        threading.excepthook = previous
