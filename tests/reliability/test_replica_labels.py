"""Labels across replicas: two server processes on one shared log, each label posted to the
replica that did *not* serve the prediction, right after the prediction.

Then again with the log writer stalled for 10 s by a lock another connection holds (SQLite:
the database's write lock; PostgreSQL: an EXCLUSIVE lock on ``predictions``). Either way: 0
labels refused, 0 lost (every label joined in ``/drift/window`` and in the retrain's
training rows), and live accuracy equal to the client's own count.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.conftest import IRIS_SPEC
from tests.processes import wait_until
from tests.reliability.conftest import copy_store
from tests.reliability.figures import Figures
from tests.reliability.scale import SCALE
from tests.reliability.server import ServerProcess, server_env

pytestmark = pytest.mark.slow

#: Predictions per phase: 5,000 in ``make reliability``, 1,000 in ``make test``.
PREDICTIONS = SCALE.replica_labels
CLIENTS = 4
STALL_S = 10.0


@dataclass
class Traffic:
    """What the client saw: the ids it was served and the truth it sent for each."""

    truth: dict[str, str] = field(default_factory=dict)
    correct: int = 0
    refused: list[str] = field(default_factory=list)
    not_yet_matched: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


def _iris_rows(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    from sklearn.datasets import load_iris

    data = load_iris()
    pick = np.random.default_rng(seed).integers(0, len(data.target), n)
    return data.data[pick], [str(data.target_names[t]) for t in data.target[pick]]


def _drive(a: str, b: str, n: int, seed: int) -> Traffic:
    """``n`` predictions on replica A, each label posted at once to replica B."""
    rows, truth = _iris_rows(n, seed)
    traffic = Traffic()

    def worker(k: int) -> None:
        with httpx.Client(base_url=a, timeout=120) as ca, \
                httpx.Client(base_url=b, timeout=120) as cb:
            for i in range(k, n, CLIENTS):
                answer = ca.post("/predict", json={"features": rows[i].tolist()})
                assert answer.status_code == 200, answer.text
                served = answer.json()["predictions"][0]
                rid = served["request_id"]
                label = cb.post("/feedback", json={"request_id": rid, "label": truth[i]})
                with traffic.lock:
                    traffic.truth[rid] = truth[i]
                    traffic.correct += int(served["label"] == truth[i])
                    if label.status_code != 200 or label.json()["recorded"] != [rid]:
                        traffic.refused.append(f"{rid}: {label.status_code} {label.text}")
                    else:
                        traffic.not_yet_matched += len(label.json()["not_yet_matched"])

    with ThreadPoolExecutor(CLIENTS) as pool:
        for future in [pool.submit(worker, k) for k in range(CLIENTS)]:
            future.result()
    return traffic


def _window_labels(url: str, start: datetime, end: datetime) -> dict[str, str | None]:
    """Every row of ``[start, end)`` through ``GET /drift/window``, paged: id -> label."""
    out: dict[str, str | None] = {}
    offset: int | None = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        while offset is not None:
            page = client.get("/drift/window", params={
                "start": start.isoformat(), "end": end.isoformat(), "limit": 1000,
                "offset": offset})
            assert page.status_code == 200, page.text
            body = page.json()
            out.update((row["request_id"], row["label"]) for row in body["rows"])
            offset = body["next_offset"]
    return out


def _metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=30).text
    found = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert found, f"{name} not in /metrics"
    return float(found.group(1))


@contextmanager
def _stalled(log_url: str, db_path: Path | None) -> Iterator[None]:
    """Hold a lock that stops the log writer for ``STALL_S`` seconds, from another
    connection, while the body runs (released by a timer, not by the body's end)."""
    released = threading.Event()
    if db_path is not None:
        conn = sqlite3.connect(db_path, timeout=30, check_same_thread=False)
        conn.isolation_level = None
        conn.execute("BEGIN IMMEDIATE")  # SQLite's one write lock

        def release() -> None:
            conn.execute("ROLLBACK")
            conn.close()
            released.set()
    else:
        import psycopg

        conn = psycopg.connect(log_url.replace("postgresql+psycopg://", "postgresql://"))
        conn.execute("LOCK TABLE predictions IN EXCLUSIVE MODE")  # reads pass, writes wait

        def release() -> None:
            conn.rollback()
            conn.close()
            released.set()

    timer = threading.Timer(STALL_S, release)
    timer.start()
    try:
        yield
    finally:
        timer.join()
        assert released.is_set()


def _check(a: ServerProcess, b: ServerProcess, traffic: Traffic, log_url: str,
           start: datetime, state: Path, earlier: list[Traffic]) -> dict[str, float]:
    """Every label of ``traffic`` joined; live accuracy over it and the ``earlier`` phases
    equals what the client counted itself."""
    assert traffic.refused == [], traffic.refused[:5]
    assert len(traffic.truth) == PREDICTIONS
    end = datetime.now(UTC) + timedelta(seconds=1)
    # A's writer catches up (after a stall it retries): then every row is in the log.
    wait_until(lambda: _metric(a.url, "driftloop_predlog_queue_rows") == 0, "A's log queue",
               timeout=120, interval=0.2)
    seen = _window_labels(b.url, start, end)
    missing = [rid for rid in traffic.truth if rid not in seen]
    assert missing == [], f"{len(missing)} served rows not in the log"
    wrong = {rid: seen[rid] for rid, label in traffic.truth.items() if seen[rid] != label}
    assert wrong == {}, f"{len(wrong)} labels lost or changed in /drift/window"
    # The retrain's training rows: the pipeline's own read of the window.
    from driftloop.retrain import REQUEST_ID_COLUMN, production_rows
    from driftloop.run_context import Context
    from driftloop.settings import Settings
    from driftloop.spec import load_spec

    spec = load_spec(IRIS_SPEC)
    ctx = Context(Settings(state_dir=state, spec_path=IRIS_SPEC, prediction_log_url=log_url),
                  spec, spec.name)
    frame = production_rows(ctx, start, end)
    trained = dict(zip(frame[REQUEST_ID_COLUMN], frame[spec.target], strict=True))
    assert {rid: trained.get(rid) for rid in traffic.truth} == traffic.truth
    # Live accuracy on either replica is the client's own count (the window covers all).
    phases = [*earlier, traffic]
    labels = sum(len(t.truth) for t in phases)
    expected = sum(t.correct for t in phases) / labels
    for server in (a, b):
        wait_until(lambda s=server: _metric(s.url, "driftloop_live_labeled_rows") == labels,
                   "live accuracy over every label", timeout=30, interval=0.2)  # every 5 s
        accuracy = _metric(server.url, "driftloop_live_accuracy")
        assert accuracy == pytest.approx(expected, abs=1e-9)
    assert _metric(b.url, "driftloop_feedback_orphans") == 0
    return {"labels": len(traffic.truth), "refused": len(traffic.refused),
            "lost": len(missing) + len(wrong), "not_yet_matched": traffic.not_yet_matched,
            "live_accuracy": round(accuracy, 4)}


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
def test_every_label_posted_to_the_other_replica_is_kept(
    backend: str, champion_template: Path, tmp_path: Path, figures: Figures,
    request: pytest.FixtureRequest,
) -> None:
    state = copy_store(champion_template, tmp_path)
    db_path = tmp_path / "predictions.db" if backend == "sqlite" else None
    log_url = (f"sqlite:///{db_path}" if db_path is not None
               else request.getfixturevalue("pg_database"))
    env = server_env(state, log_url, DRIFTLOOP_DRIFT_WINDOW_ROWS=str(4 * PREDICTIONS),
                     DRIFTLOOP_SPEC_PATH=str(IRIS_SPEC))
    a = ServerProcess(env, tmp_path / "a.log")
    b = ServerProcess(env, tmp_path / "b.log")
    try:
        a.wait_ready()
        b.wait_ready()
        start = datetime.now(UTC) - timedelta(seconds=1)
        began = time.monotonic()
        calm = _drive(a.url, b.url, PREDICTIONS, seed=1)
        calm_s = time.monotonic() - began
        figures.record(f"replica_labels_{backend}", seconds=round(calm_s, 1),
                       **_check(a, b, calm, log_url, start, state, []))

        began = time.monotonic()
        with _stalled(log_url, db_path):
            stalled = _drive(a.url, b.url, PREDICTIONS, seed=2)
        stalled_s = time.monotonic() - began
        assert stalled_s >= STALL_S
        checked = _check(a, b, stalled, log_url, start, state, [calm])
        # The stall was real: labels arrived before their rows were written.
        assert stalled.not_yet_matched > 0
        figures.record(f"replica_labels_{backend}_stalled", seconds=round(stalled_s, 1),
                       stall_s=STALL_S, **checked)
    finally:
        a.stop()
        b.stop()
