"""One pure-ASGI middleware: body-size limit, request metrics, and the /predict fast path.

Pure ASGI rather than ``BaseHTTPMiddleware``: it adds a few microseconds per request instead
of a task and a stream per request. ``POST /predict`` is answered here by the same function
the documented route calls (:func:`serving.routers.predict.predict_bytes`), without
Starlette's routing and FastAPI's request machinery around it.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.metrics import ENDPOINTS
from serving.routers.predict import predict_bytes
from serving.state import AppState

log = logging.getLogger(__name__)

_KNOWN = {path: path for path in ENDPOINTS}
_JSON_HEADERS = [(b"content-type", b"application/json")]


class BodyTooLarge(Exception):
    pass


def _too_large(limit: int, size: int | None = None) -> str:
    """The 413 detail, the same for a declared, a chunked or a /predict body."""
    body = "request body" if size is None else f"request body of {size} bytes"
    return f"{body} is over the limit of {limit} bytes (DRIFTLOOP_MAX_BODY_BYTES)"


class ServingMiddleware:
    def __init__(self, app: ASGIApp, state: AppState) -> None:
        self.app = app
        self.state = state
        self.metrics = state.metrics
        self.limit = state.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = scope["path"]
        endpoint = _KNOWN.get(path, "other")
        method = scope["method"]
        limit = self.limit

        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    length = -1
                if length > limit or length < 0:
                    status = 413 if length > limit else 400
                    await _answer(send, status, json.dumps({"detail": (
                        _too_large(limit, length) if status == 413
                        else "invalid Content-Length header")}).encode(), close=True)
                    self.metrics.observe_request(endpoint, method, status,
                                                 time.perf_counter() - started)
                    return
                break

        if endpoint == "/predict" and method == "POST":
            status = await self._predict(receive, send)
            self.metrics.observe_request(endpoint, method, status,
                                         time.perf_counter() - started)
            return

        status = 500
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Chunked bodies have no Content-Length: count as they arrive.
                    raise HTTPException(413, _too_large(limit))
            return message

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_status)
        finally:
            self.metrics.observe_request(endpoint, method, status,
                                         time.perf_counter() - started)

    async def _predict(self, receive: Receive, send: Send) -> int:
        try:
            body = await _read_body(receive, self.limit)
        except BodyTooLarge:
            await _answer(send, 413, json.dumps({"detail": _too_large(self.limit)}).encode(),
                          close=True)
            return 413
        try:
            status, payload, retry_after = await predict_bytes(self.state, body)
        except Exception:  # a bug, not bad input: answer 500 and keep the traceback
            log.exception("POST /predict failed")
            status, payload = 500, b'{"detail": "internal error (see the server log)"}'
            retry_after = None
        await _answer(send, status, payload, retry_after=retry_after)
        return status


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break  # client went away: an empty body is answered (and not logged) as such
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, *, close: bool = False,
                  retry_after: int | None = None) -> None:
    headers: list[Any] = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
