"""``driftloop serve`` as a real process the tests can load, kill -9, SIGTERM and restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from driftloop.settings import PROJECT_ROOT
from tests.processes import wait_until_answers
from tests.reliability.proxy import free_port

TOKEN = "reliability-admin-token-7f3a9c"


def server_env(state_dir: Path, log_url: str, **extra: str) -> dict[str, str]:
    """The parent's environment without its DRIFTLOOP_* settings, plus the server's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    env.update(DRIFTLOOP_STATE_DIR=str(state_dir), DRIFTLOOP_PREDICTION_LOG_URL=log_url,
               DRIFTLOOP_ADMIN_TOKEN=TOKEN, PYTHONPATH=str(PROJECT_ROOT), **extra)
    return env


class ServerProcess:
    def __init__(self, env: dict[str, str], log_path: Path,
                 args: Sequence[str] = ("--log-level", "warning"), port: int | None = None,
                 ) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "driftloop", "serve", "--port", str(self.port), *args],
                env=env, cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 240) -> ServerProcess:
        wait_until_answers(self.proc, self.url + "/ready", self.log_path, timeout=timeout)
        return self

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 90) -> int:
        """SIGTERM and wait: uvicorn drains, then re-raises the signal (exit -15)."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


@contextmanager
def running_server(env: dict[str, str], log_path: Path,
                   args: Sequence[str] = ("--log-level", "warning")) -> Iterator[ServerProcess]:
    server = ServerProcess(env, log_path, args)
    try:
        yield server.wait_ready()
    finally:
        server.stop()
