"""A client faster than the prediction log: the server pushes back and no row is lost.

One ``driftloop serve`` on its embedded SQLite log; four client threads send
``SCALE.pushback_rows`` rows (1,000,000 in ``make reliability``) in ``/predict`` calls of
1,000 rows, as fast as the server answers, and honour 503 + ``Retry-After``. The queue is
small, so the log falls behind and the server must refuse calls. At the end, every row that
was answered is in the log, exactly once, and no row was dropped.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.reliability.conftest import copy_store
from tests.reliability.figures import Figures
from tests.reliability.load import IRIS_ROWS
from tests.reliability.scale import SCALE
from tests.reliability.server import running_server, server_env

pytestmark = pytest.mark.slow

CALL_ROWS = 1_000
CLIENTS = 4
QUEUE_MAX_ROWS = 20_000


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.timeout(900)
def test_a_client_faster_than_the_log_is_pushed_back_and_loses_no_row(
    champion_template: Path, tmp_path: Path, figures: Figures,
) -> None:
    db = tmp_path / "predictions.db"
    env = server_env(copy_store(champion_template, tmp_path), f"sqlite:///{db}",
                     DRIFTLOOP_LOG_QUEUE_MAX_ROWS=str(QUEUE_MAX_ROWS))
    body = json.dumps({"instances": [IRIS_ROWS[i % len(IRIS_ROWS)]
                                     for i in range(CALL_ROWS)]}).encode()
    calls = SCALE.pushback_rows // CALL_ROWS
    answered: list[list[str]] = []
    refusals: list[float] = []
    errors: list[BaseException] = []
    next_call = iter(range(calls))
    lock = threading.Lock()

    def client(url: str) -> None:
        try:
            with httpx.Client(base_url=url, timeout=120,
                              headers={"content-type": "application/json"}) as http:
                while True:
                    with lock:
                        if next(next_call, None) is None:
                            return
                    while True:
                        response = http.post("/predict", content=body)
                        if response.status_code != 503:
                            break
                        wait = float(response.headers["retry-after"])
                        with lock:
                            refusals.append(wait)
                        time.sleep(wait)
                    assert response.status_code == 200, response.text
                    payload = response.json()
                    assert payload["logged"] is True
                    ids = [p["request_id"] for p in payload["predictions"]]
                    with lock:
                        answered.append(ids)
        except BaseException as exc:  # surfaces in the main thread below
            errors.append(exc)

    with running_server(env, tmp_path / "server.log") as server, \
            httpx.Client(base_url=server.url, timeout=60) as http:
        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(server.url,)) for _ in range(CLIENTS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        sent_s = time.monotonic() - started
        assert not errors, errors
        deadline = time.monotonic() + 300
        while metric(http.get("/metrics").text, "driftloop_predlog_queue_rows") > 0:
            assert time.monotonic() < deadline, "the log queue never drained"
            time.sleep(0.2)
        drained_s = time.monotonic() - started
        text = http.get("/metrics").text

    ids = [rid for call in answered for rid in call]
    assert len(ids) == calls * CALL_ROWS
    with sqlite3.connect(db) as conn:
        logged = [r[0] for r in conn.execute("SELECT request_id FROM predictions")]
    assert len(logged) == len(ids)  # exactly once each ...
    assert set(logged) == set(ids)  # ... and every answered row
    assert metric(text, "driftloop_predlog_dropped_rows_total") == 0
    refused_rows = metric(text, "driftloop_predlog_refused_rows_total")
    assert refused_rows == CALL_ROWS * len(refusals)
    assert refusals, "the log kept up: this test did not exercise push-back"
    figures.record("log_pushback", rows_sent=len(ids), clients=CLIENTS,
                   rows_per_call=CALL_ROWS, queue_max_rows=QUEUE_MAX_ROWS,
                   calls_refused_with_503=len(refusals),
                   retry_after_s={"min": min(refusals), "max": max(refusals)},
                   rows_in_log=len(logged), rows_dropped=0,
                   seconds_to_answer_all=round(sent_s, 1),
                   seconds_until_all_written=round(drained_s, 1),
                   rows_per_s_into_log=round(len(logged) / drained_s))
