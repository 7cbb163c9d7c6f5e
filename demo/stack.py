"""The demo's processes and state: a clean local state dir and the driftloop server."""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from driftloop.errors import DriftloopError
from driftloop.settings import PROJECT_ROOT

#: What marks a directory as driftloop's local state (so a reset never removes anything else).
STATE_MARKERS = ("mlflow.db", "predictions.db", "mlartifacts", "airflow", "kfp", "run")


def running_stack_pids(state: Path) -> list[int]:
    """Process groups that ``make up`` started on this state dir and that still run."""
    alive = []
    for pidfile in (state / "run").glob("*.pid"):
        try:
            pid = int(pidfile.read_text().strip())
            os.killpg(pid, 0)
        except (ValueError, ProcessLookupError, PermissionError, OSError):
            continue
        alive.append(pid)
    return alive


def reset_state(state: Path) -> bool:
    """Start from a clean local state; refuses while a ``make up`` stack runs on it.

    Returns True when an earlier state was removed.
    """
    if not state.exists():
        return False
    if running_stack_pids(state):
        raise DriftloopError(
            f"a local stack (`make up`) is running on {state}: stop it with `make down`, or "
            "run the demo on another state dir (STATE=/tmp/driftloop-demo make demo)")
    entries = list(state.iterdir())
    if entries and not any((state / m).exists() for m in STATE_MARKERS):
        raise DriftloopError(f"{state} is not empty and does not look like driftloop state; "
                             "pick another state dir")
    shutil.rmtree(state)
    return True


def check_port_free(host: str, port: int, variable: str) -> None:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            raise DriftloopError(
                f"port {port} is taken (a `make up` stack or another server?): stop it, or "
                f"pick another port with {variable}=<port>") from None


class Server:
    """``driftloop serve`` in its own process group, on the demo's state."""

    def __init__(self, state: Path, port: int, env: dict[str, str]) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.token = secrets.token_urlsafe(24)
        self.log = state / "logs" / "demo-server.log"
        self._env = {**env, "DRIFTLOOP_ADMIN_TOKEN": self.token}
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        check_port_free("127.0.0.1", self.port, "PORT")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "driftloop", "serve", "--host", "127.0.0.1",
                 "--port", str(self.port)],
                cwd=PROJECT_ROOT, env=self._env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self._process.poll() is not None:
                tail = self.log.read_text()[-1500:]
                raise DriftloopError(f"the server exited (code {self._process.returncode}); "
                                     f"its log {self.log} ends with:\n{tail}")
            try:
                if httpx.get(self.url + "/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise DriftloopError(f"the server did not become ready in {timeout:.0f}s; "
                                     f"see {self.log}")
            time.sleep(0.2)

    def stop(self) -> None:
        """SIGTERM (the server drains its prediction log), then SIGKILL if it hangs."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self._process.pid, 9)
            self._process.wait(timeout=10)
