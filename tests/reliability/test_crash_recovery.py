"""Crash and restart under load, on SQLite and on PostgreSQL.

kill -9 of a loaded server: after a restart on the same log, every row answered more than
~1 s before the kill is there (the writer's promise: a row waits at most the flush interval,
0.2 s, plus one write). SIGTERM of a loaded server: every answered row is there.

(The hard-kill test of tests/serving/test_processes.py moved here and grew: both backends,
more load, a restart. Its SIGTERM test stays there: it forces rows to sit in the queue at
the signal, so it proves the drain itself; this one proves nothing is lost under load.)
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import pytest

from driftloop.predlog import PredictionLog
from tests.reliability.conftest import copy_store
from tests.reliability.figures import Figures
from tests.reliability.load import IRIS_ROWS, Answer, predict_load
from tests.reliability.scale import SCALE
from tests.reliability.server import ServerProcess, server_env

pytestmark = pytest.mark.slow

#: Rows answered this long before a kill -9 must be in the log.
PROMISE_S = 1.0


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", f"sqlite:///{tmp_path / 'predictions.db'}"
    return "postgresql", request.getfixturevalue("pg_database")


async def load_until_signal(server: ServerProcess, sig: signal.Signals, after_s: float,
                            connections: int) -> tuple[list[Answer], float]:
    """Load the server, send it ``sig`` after ``after_s`` seconds, keep loading until it
    is gone; returns every answer and the instant of the signal."""
    answers: list[Answer] = []
    signalled: list[float] = []

    def stop(_sent: int) -> bool:
        return bool(signalled) and server.proc.poll() is not None

    async def strike() -> None:
        await asyncio.sleep(after_s)
        signalled.append(time.monotonic())
        server.proc.send_signal(sig)

    await asyncio.gather(strike(), predict_load(server.url, connections, stop, answers,
                                                timeout=30))
    return answers, signalled[0]


def stored_ids(log_url: str, answers: list[Answer]) -> set[str]:
    log = PredictionLog(log_url, create=False)
    try:
        return set(log.served([rid for a in answers if a.ok for rid in a.request_ids]))
    finally:
        log.dispose()


@pytest.mark.timeout(900)
def test_kill9_then_restart_then_sigterm_under_load_lose_no_promised_row(
    backend: tuple[str, str], champion_template: Path, tmp_path: Path, figures: Figures,
) -> None:
    name, log_url = backend
    env = server_env(copy_store(champion_template, tmp_path), log_url)

    # 1. kill -9 in the middle of the load.
    first = ServerProcess(env, tmp_path / "server-1.log").wait_ready()
    try:
        answers, killed_at = asyncio.run(load_until_signal(
            first, signal.SIGKILL, SCALE.crash_load_s, SCALE.crash_connections))
    finally:
        first.stop()
    assert first.proc.returncode == -signal.SIGKILL
    answered = [a for a in answers if a.ok]
    assert len(answered) > 100, f"only {len(answered)} answers before the kill"

    # 2. restart on the same log: it serves, and the log kept what was promised.
    restarted_at = time.monotonic()
    second = ServerProcess(env, tmp_path / "server-2.log").wait_ready()
    restart_s = time.monotonic() - restarted_at
    try:
        stored = stored_ids(log_url, answers)
        lost = [(killed_at - a.received, rid) for a in answered for rid in a.request_ids
                if rid not in stored]
        promised = [age for age, _ in lost if age > PROMISE_S]
        reply = httpx.post(second.url + "/predict", json={"features": IRIS_ROWS[0]}, timeout=30)
        assert reply.status_code == 200, reply.text

        # 3. SIGTERM in the middle of the load: drained, nothing lost.
        termed, termed_at = asyncio.run(load_until_signal(
            second, signal.SIGTERM, SCALE.crash_load_s, SCALE.crash_connections))
        assert second.proc.wait(90) in (0, -signal.SIGTERM), second.output()[-3000:]
        drained_s = time.monotonic() - termed_at
    finally:
        second.stop()
    term_answered = [a for a in termed if a.ok]
    term_stored = stored_ids(log_url, termed)
    term_lost = [rid for a in term_answered for rid in a.request_ids if rid not in term_stored]

    figures.record(f"crash_{name}", connections=SCALE.crash_connections,
                   kill9={"requests_answered": len(answered),
                          "rows_answered": sum(len(a.request_ids) for a in answered),
                          "rows_lost": len(lost),
                          "rows_lost_older_than_1s": len(promised),
                          "oldest_lost_row_age_s": round(max((a for a, _ in lost),
                                                             default=0.0), 3),
                          "restart_to_ready_s": round(restart_s, 1)},
                   sigterm={"requests_answered": len(term_answered),
                            "rows_answered": sum(len(a.request_ids) for a in term_answered),
                            "rows_lost": len(term_lost),
                            "signal_to_exit_s": round(drained_s, 2)})
    assert promised == [], f"{len(promised)} rows answered >{PROMISE_S}s before the kill lost"
    assert len(term_answered) > 100
    assert term_lost == [], f"SIGTERM lost {len(term_lost)} answered rows"
