"""Real server processes: `driftloop serve`, SIGTERM drain, two replicas on one PostgreSQL
log. Hard kills, restarts and reloads under load are in tests/reliability/."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from driftloop.predlog import PredictionLog
from driftloop.settings import PROJECT_ROOT, Settings
from tests.processes import wait_until, wait_until_answers
from tests.serving.conftest import IRIS_ROW, TOKEN

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(store: Settings, log_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(store.state_dir), DRIFTLOOP_SPEC_PATH=str(store.spec_path),
               DRIFTLOOP_PREDICTION_LOG_URL=log_url, DRIFTLOOP_ADMIN_TOKEN=TOKEN, **extra)
    return env


class Server:
    def __init__(self, proc: subprocess.Popen[str], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def output(self) -> str:
        return self.log.read_text()


@contextmanager
def servers(count: int, store: Settings, log_url: str, tmp_path: Path,
            **extra: str) -> Iterator[list[Server]]:
    """``count`` server processes, started together, each ready when yielded."""
    started: list[Server] = []
    try:
        for _ in range(count):
            port = _free_port()
            log = tmp_path / f"server-{port}.log"
            with log.open("w") as out:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "driftloop", "serve", "--port", str(port),
                     "--log-level", "warning"],
                    env=_env(store, log_url, **extra), cwd=PROJECT_ROOT, stdout=out,
                    stderr=subprocess.STDOUT, text=True)
            started.append(Server(proc, f"http://127.0.0.1:{port}", log))
        deadline = time.monotonic() + 180
        for server in started:
            wait_until_answers(server.proc, server.url + "/ready", server.log,
                               timeout=max(deadline - time.monotonic(), 0))
        yield started
    finally:
        for server in started:
            if server.proc.poll() is None:
                server.proc.kill()
                server.proc.wait()


@contextmanager
def serve(store: Settings, log_url: str, tmp_path: Path, **extra: str) -> Iterator[Server]:
    with servers(1, store, log_url, tmp_path, **extra) as (server,):
        yield server


def _count(log_url: str) -> int:
    log = PredictionLog(log_url, create=False)
    try:
        with log.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT count(*) FROM predictions").scalar_one())
    finally:
        log.dispose()


def test_serve_without_a_champion_exits_1_with_the_fix(settings: Settings,
                                                       tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "driftloop", "serve", "--port", str(_free_port())],
        env=_env(settings, f"sqlite:///{tmp_path / 'p.db'}"), cwd=PROJECT_ROOT,
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "driftloop: error: no champion for model 'iris-classifier'" in result.stderr
    assert "run `driftloop bootstrap` first" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_on_a_taken_port_says_so(iris_store: Settings, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, "-m", "driftloop", "serve", "--port", str(port)],
            env=_env(iris_store, f"sqlite:///{tmp_path / 'p.db'}"), cwd=PROJECT_ROOT,
            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_idle_keep_alive_connection_is_still_served(iris_store: Settings,
                                                       tmp_path: Path) -> None:
    """A connection a client keeps in its pool is not closed under it after a few idle
    seconds (uvicorn's default, 5 s, did: "Server disconnected without sending a response"
    when a reused connection raced the close)."""
    from serving.run import KEEP_ALIVE_S

    assert KEEP_ALIVE_S > 60  # outlasts the idle timeout of common load balancers
    request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    with serve(iris_store, f"sqlite:///{tmp_path / 'p.db'}", tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            for _ in range(2):
                conn.sendall(request)
                answer = _read_response(conn)
                assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
                assert b"connection: close" not in answer.lower()
                time.sleep(7)  # longer than uvicorn's default keep-alive (5 s)


def _read_response(conn: socket.socket) -> bytes:
    """One whole HTTP response (head and Content-Length body): the server may send them in
    separate segments, and a later read must not see this response's tail."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def test_sigterm_drains_the_log_queue(iris_store: Settings, tmp_path: Path) -> None:
    log_url = f"sqlite:///{tmp_path / 'p.db'}"
    # Rows wait up to 1 s and in batches of 100k: at SIGTERM they are all still queued.
    with serve(iris_store, log_url, tmp_path, DRIFTLOOP_LOG_FLUSH_INTERVAL_S="1.0",
               DRIFTLOOP_LOG_BATCH_ROWS="100000") as server:
        sent = 0
        with httpx.Client(base_url=server.url) as client:
            for _ in range(20):  # until a scrape shows rows waiting (the writer wakes each 1 s)
                for _ in range(10):
                    assert client.post("/predict", json={"instances": [IRIS_ROW] * 5}
                                       ).status_code == 200
                    sent += 5
                metrics = client.get("/metrics").text
                queued = float(re.search(r"^driftloop_predlog_queue_rows (\S+)$", metrics,
                                         re.MULTILINE).group(1))
                if queued > 0:
                    break
        assert queued > 0
        server.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the exit is "by SIGTERM".
        assert server.proc.wait(60) in (0, -signal.SIGTERM), server.output()
    assert _count(log_url) == sent


@pytest.mark.postgres
def test_two_replicas_on_one_postgres_log_report_the_same_drift(
    iris_store: Settings, pg_database: str, tmp_path: Path
) -> None:
    with servers(2, iris_store, pg_database, tmp_path) as (a, b):
        rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 2.8, 4.3, 1.3]] * 20
        shifted = [[r[0], r[1], r[2] + 1.0, r[3]] for r in rows]
        start = time.time()
        with httpx.Client(base_url=a.url) as ca, httpx.Client(base_url=b.url) as cb:
            assert ca.post("/predict", json={"instances": rows}).status_code == 200
            assert cb.post("/predict", json={"instances": shifted}).status_code == 200
            assert cb.post("/predict", json={"instances": rows}).status_code == 200
            end = time.time() + 1
            from datetime import UTC, datetime

            interval = {"start": datetime.fromtimestamp(start - 1, UTC).isoformat(),
                        "end": datetime.fromtimestamp(end, UTC).isoformat()}
            wait_until(lambda: ca.get("/drift/window", params=interval).json()["total"]
                       >= 180, "both writers' 180 rows in the log", timeout=30)
            for params in ({}, {"rows": 150}, interval):
                got_a = ca.get("/drift/status", params=params).json()
                got_b = cb.get("/drift/status", params=params).json()
                assert got_a == got_b, params
            assert got_a["window"]["rows"] == 180
            assert got_a["dataset_drift"] is True
            page_a = ca.get("/drift/window", params=interval).json()
            assert page_a == cb.get("/drift/window", params=interval).json()
            assert page_a["total"] == 180
    assert _count(pg_database) == 180
