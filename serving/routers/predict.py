"""``POST /predict``: one row or a batch; every served row goes to the prediction log.

This is the hot path, so it is written as one function from body bytes to ``(status, JSON
bytes)``: pydantic-core validates the body in one ``model_validate_json`` call, requests that
arrive together share one model call (serving/batcher.py), the answer is serialized once, and
bad input becomes its 4xx answer right here. The route below documents
it (the OpenAPI request and response schemas are exactly what it accepts and returns) and
serves it through FastAPI; :class:`serving.middleware.ServingMiddleware` calls the same
function directly for ``POST /predict``, skipping routing, dependency solving and two
exception layers that cost more than the model itself (benchmarks/RESULTS.md).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from functools import partial
from typing import NamedTuple

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from driftloop.predlog import now_micros, rows_for
from serving.errors import validation_message
from serving.inputs import InputError, rows_of, to_arrays, unknown_categories
from serving.schemas import ErrorResponse, PredictRequest, PredictResponse, errors
from serving.state import AppState

router = APIRouter(tags=["predict"])
log = logging.getLogger(__name__)

_REQUEST_SCHEMA = PredictRequest.model_json_schema()
_NOT_READY = json.dumps({"detail": "no model loaded yet (the server is starting or its first "
                                   "load failed; see GET /ready)"}).encode()


class _Ids:
    """Request ids: 128 bits as 32 hex digits, milliseconds since the epoch (48 bits) then 80
    random bits, like UUIDv7. Unique across replicas without coordination, unguessable
    (os.urandom; an id is what /feedback trusts), and time-ordered, so the log's unique index
    grows at its right edge. The randomness is drawn 8 KiB at a time: a syscall per request
    costs more than the id itself here."""

    CHUNK = 8192

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hex = ""
        self._pos = 0

    def new(self, n: int) -> list[str]:
        prefix = f"{time.time_ns() // 1_000_000:012x}"
        need = 20 * n
        with self._lock:
            if self._pos + need > len(self._hex):
                self._hex = os.urandom(max(self.CHUNK, need // 2)).hex()
                self._pos = 0
            raw = self._hex[self._pos : self._pos + need]
            self._pos += need
        return [prefix + raw[i : i + 20] for i in range(0, need, 20)]


_new_ids = _Ids().new


class Answer(NamedTuple):
    status: int
    body: bytes
    #: Seconds for a ``Retry-After`` header (503s only).
    retry_after: int | None = None


def _error(status: int, detail: str) -> Answer:
    return Answer(status, json.dumps({"detail": detail}).encode())


def _log_full(state: AppState, n: int) -> Answer:
    writer = state.writer
    wait = writer.retry_after()
    detail = (f"the prediction log is behind ({writer.pending_rows} rows waiting to be "
              f"written, at most {writer.queue_max_rows}): these {n} row(s) were neither "
              f"answered nor logged. Retry after {wait} s.")
    return Answer(503, json.dumps({"detail": detail}).encode(), wait)


async def predict_bytes(state: AppState, body: bytes) -> Answer:
    """The whole of ``POST /predict``: body bytes in, status, JSON body and Retry-After out.
    """
    started = time.perf_counter()
    model = state.holder.current  # one read: this request uses this model to the end
    if model is None:
        return Answer(503, _NOT_READY, 5)
    try:
        request = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        return _error(*validation_message(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors(include_url=False)]))
    try:
        form, rows = rows_of(request.features, request.instances, request.records,
                             state.settings.max_batch_rows)
        numeric, categorical = to_arrays(model, form, rows)
    except InputError as exc:
        if exc.feature is not None and exc.reason is not None:  # counted, never silent
            state.writer.refuse(model.name, exc.feature, exc.reason, len(rows))
            state.metrics.refused_values.labels(exc.feature, exc.reason).inc(len(rows))
        return _error(exc.status, str(exc))
    n = len(rows)
    # Push back before any work: a client that honours the 503 loses nothing.
    if not state.writer.admit(n):
        return _log_full(state, n)
    # Requests arriving together share one model call (serving/batcher.py).
    outputs = await state.batcher.predict(model, numeric, categorical)
    if outputs.shape != (n, len(model.labels)) or not np.isfinite(outputs).all():
        return _error(422, "the model returned no valid outputs for these inputs "
                           "(values far outside the training range?)")
    task = model.task
    labels, decoded = task.decode(outputs, model.label_array)
    ids = _new_ids(n)
    if state.shadow is not None and state.shadow.model is not None:  # off the hot path
        state.shadow.submit(ids, numeric, categorical)
    logged = state.writer.submit(n, partial(
        rows_for, now_micros(), ids, model.name, model.version, numeric,
        categorical if model.categorical else None, labels, outputs, model.labels))
    for index, count in enumerate(task.counter_indices(decoded, len(model.labels)).tolist()):
        if count:
            model.counters[index].inc(count)
    if model.categorical:
        for feature, count in unknown_categories(model, categorical).items():
            state.metrics.unknown_categories.labels(feature).inc(count)
    # The answer as format strings (outputs are finite, so repr is valid JSON); the model's
    # part, the label strings and the row layout were encoded when it loaded.
    rows_json = task.render_rows(model.row_template, model.label_json, ids, decoded, outputs)
    latency = (time.perf_counter() - started) * 1000.0
    return Answer(200, (f'{{{model.head_json}, "predictions": [{rows_json}], '
                        f'"logged": {"true" if logged else "false"}, '
                        f'"latency_ms": {latency!r}}}').encode())


@router.post(
    "/predict", response_model=PredictResponse, responses={
        **errors(400, 413, 422),
        503: {"model": ErrorResponse,
              "description": "No model loaded yet, or the prediction log is behind: nothing "
                             "was answered or logged; retry after `Retry-After` seconds",
              "headers": {"Retry-After": {"description": "Seconds to wait before retrying",
                                          "schema": {"type": "integer"}}}}},
    summary="Predict one row or a batch",
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": _REQUEST_SCHEMA}}}},
)
async def predict(request: Request) -> Response:
    """Per row, the class and its probabilities (a classifier) or the value (a regressor),
    each with a ``request_id`` for ``POST /feedback``.

    Exactly one of ``features`` (one positional row), ``instances`` (positional rows) or
    ``records`` (rows by feature name); positional rows follow ``GET /model``'s feature
    order. Rows are validated as a whole: one bad row rejects the call and nothing of it is
    logged. Unknown categories are accepted and counted
    (``driftloop_unknown_categories_total``).

    When the prediction log is behind, the call is refused with 503 and ``Retry-After``
    before anything is computed; retry it and nothing is lost.
    """
    answer = await predict_bytes(request.app.state.driftloop, await request.body())
    headers = ({"Retry-After": str(answer.retry_after)} if answer.retry_after is not None
               else None)
    return Response(answer.body, status_code=answer.status, headers=headers,
                    media_type="application/json")
