"""Waiting for a process the tests started (a server, ``mlflow server``) to answer HTTP."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx


def wait_until_answers(process: subprocess.Popen, url: str, log: Path, *, timeout: float,
                       what: str = "server", interval: float = 0.2) -> None:
    """Poll ``url`` until it answers 200. Fails with the end of ``log`` when the process
    exits first or ``timeout`` seconds pass, so a test that cannot start says why."""
    deadline = time.monotonic() + timeout
    while True:
        assert process.poll() is None, \
            f"{what} exited:\n{log.read_text(errors='replace')[-3000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, \
            f"{what} not ready:\n{log.read_text(errors='replace')[-3000:]}"
        time.sleep(interval)


def wait_until(condition: Callable[[], bool], what: str, *, timeout: float = 60.0,
               interval: float = 0.05) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds.
    Tests wait for the thing they need (rows in the log, a metric), never a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(interval)
