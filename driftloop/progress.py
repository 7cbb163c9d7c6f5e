"""Progress lines for long commands: one line per step with the elapsed time."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO


class Progress:
    """Prints ``[  12.3s] message`` lines to stderr (stdout stays for results)."""

    def __init__(self, stream: TextIO | None = None, *, quiet: bool = False) -> None:
        self._stream = stream or sys.stderr
        self._start = time.monotonic()
        self._quiet = quiet

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._start

    def line(self, message: str) -> None:
        if not self._quiet:
            print(f"[{self.elapsed:7.1f}s] {message}", file=self._stream, flush=True)

    @contextmanager
    def step(self, message: str) -> Iterator[None]:
        self.line(f"{message} ...")
        started = time.monotonic()
        yield
        self.line(f"{message}: done in {time.monotonic() - started:.1f}s")
