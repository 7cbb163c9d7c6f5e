"""Load with a record of every request: when it was sent, when answered, what answered it.

One asyncio loop drives N keep-alive connections (httpx) against a real server; every
``/predict`` call is recorded with its send and receive instants (``time.monotonic``, the
clock the reload calls and ``/model`` polls are timed on too), status, model version and
request ids. :func:`serving_windows` turns reloads and polls into the instants each version
may have been serving; :func:`unexplained` lists the answers whose version was not serving
at any instant of their request.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

IRIS_ROWS = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 2.8, 4.3, 1.3],
             [4.9, 3.0, 1.4, 0.2], [6.3, 3.3, 6.0, 2.5], [5.6, 2.9, 3.6, 1.3]]
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def predict_body(i: int) -> dict[str, Any]:
    """The three request forms, one row or a few: what clients send."""
    row = IRIS_ROWS[i % len(IRIS_ROWS)]
    if i % 10 == 3:
        return {"instances": [IRIS_ROWS[(i + k) % len(IRIS_ROWS)] for k in range(4)]}
    if i % 10 == 7:
        return {"records": [dict(zip(NAMES, row, strict=True))]}
    return {"features": row}


@dataclass
class Answer:
    sent: float
    received: float
    status: int | None  # None: no HTTP answer (connection error)
    version: str | None = None
    request_ids: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass
class Poll:
    sent: float
    received: float
    version: str | None


async def predict_load(url: str, connections: int, stop: Callable[[int], bool],
                       answers: list[Answer], *, timeout: float = 60) -> None:
    """``connections`` clients posting /predict back to back until ``stop(n_sent)``."""
    counter = itertools.count()
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:

        async def worker() -> None:
            while not stop(len(answers)):
                body = predict_body(next(counter))
                sent = time.monotonic()
                try:
                    response = await client.post("/predict", json=body)
                except httpx.HTTPError as exc:
                    answers.append(Answer(sent, time.monotonic(), None,
                                          error=f"{type(exc).__name__}: {exc}"))
                    continue
                received = time.monotonic()
                answer = Answer(sent, received, response.status_code)
                if response.status_code == 200:
                    payload = response.json()
                    answer.version = payload["model"]["version"]
                    answer.request_ids = [p["request_id"] for p in payload["predictions"]]
                else:
                    answer.error = response.text[:300]
                answers.append(answer)

        await asyncio.gather(*(worker() for _ in range(connections)))


async def poll_model(url: str, polls: list[Poll], done: asyncio.Event,
                     interval: float = 0.02) -> None:
    """``GET /model`` every ``interval`` s: narrows down when each reload switched."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while not done.is_set():
            sent = time.monotonic()
            try:
                response = await client.get("/model")
                version = response.json()["version"] if response.status_code == 200 else None
            except httpx.HTTPError:
                version = None
            polls.append(Poll(sent, time.monotonic(), version))
            await asyncio.sleep(interval)


@dataclass
class Reload:
    """One ``POST /admin/reload`` call: asked version, answer, and the call's bounds."""

    version: str
    started: float
    ended: float
    status: int
    detail: str = ""
    served_before: str | None = None
    served_after: str | None = None


@dataclass
class Window:
    version: str
    #: the earliest and latest instants at which ``version`` may have been serving.
    start: float
    end: float


def serving_windows(initial: str, reloads: list[Reload], polls: list[Poll],
                    ) -> tuple[list[Window], list[float]]:
    """When each version may have served, and how long each switch instant stays unknown.

    A successful reload switched at one instant inside its call. A poll sent after the call
    started that still saw the old version puts the switch after that poll's send; a poll
    that saw the new version puts it before that poll's receipt. Reloads run one at a
    time, so these bounds are exact for each call.
    """
    windows: list[Window] = []
    uncertainty: list[float] = []
    current, since = initial, -math.inf
    for reload in reloads:
        if reload.status != 200 or reload.served_after == current:
            continue
        inside = [p for p in polls if reload.started <= p.sent <= reload.ended]
        after = max([reload.started, *(p.sent for p in inside if p.version == current)])
        before = min([reload.ended, *(p.received for p in polls
                                      if p.sent >= reload.started
                                      and p.version == reload.served_after)])
        windows.append(Window(current, since, before))
        uncertainty.append(before - after)
        current, since = str(reload.served_after), after
    windows.append(Window(current, since, math.inf))
    return windows, uncertainty


def unexplained(answers: list[Answer], windows: list[Window]) -> list[Answer]:
    """Answers whose version served at no instant of ``[sent, received]``."""
    return [a for a in answers if a.ok and not any(
        w.version == a.version and w.start <= a.received and a.sent <= w.end
        for w in windows)]
