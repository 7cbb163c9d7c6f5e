"""Opportunistic micro-batching of model calls on the event loop.

One model call has a fixed cost that dwarfs its per-row cost (ONNX Runtime: ~50 us for one row
between two requests' worth of other work, ~75 us for 32 rows; sklearn: milliseconds). The
requests whose bytes arrive in the same event-loop iteration are answered with one call: each
``predict`` parks its rows and awaits a future, and a callback scheduled with ``call_soon``
runs after every request already in the loop's ready queue has parked its rows. Nothing ever
waits for a batch to fill: a lone request is computed in the same loop iteration it arrived,
and under load the batch size follows the concurrency.

Rows are grouped by model object, so a reload between two requests never mixes models, and
each row gets the probabilities of a call of its own: bit for bit for tree ensembles, within
float32 rounding (< 1e-6, the same label) where a matrix product's kernel depends on the batch
size (tests/serving/test_batcher.py checks both).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from serving.served import ServedModel


class Batcher:
    def __init__(self) -> None:
        self._pending: list[tuple[ServedModel, np.ndarray, np.ndarray, asyncio.Future[Any]]] = []
        self._scheduled = False
        #: Calls made and rows predicted (for tests and metrics).
        self.calls = 0
        self.rows = 0

    def predict(self, model: ServedModel, numeric: np.ndarray,
                categorical: np.ndarray) -> asyncio.Future[Any]:
        """A future of ``model``'s class probabilities for these rows."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((model, numeric, categorical, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        groups: dict[int, list[tuple[ServedModel, np.ndarray, np.ndarray, Any]]] = {}
        for item in pending:
            groups.setdefault(id(item[0]), []).append(item)
        for items in groups.values():
            model = items[0][0]
            if len(items) == 1:
                numeric, categorical = items[0][1], items[0][2]
            else:
                numeric = np.concatenate([it[1] for it in items])
                categorical = np.concatenate([it[2] for it in items])
            try:
                proba = np.asarray(model.outputs(numeric, categorical), dtype=np.float64)
            except Exception as exc:  # every caller of this batch gets the error
                for *_, future in items:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.calls += 1
            self.rows += len(numeric)
            start = 0
            for _, rows, _, future in items:
                stop = start + len(rows)
                if not future.done():  # the client may have gone away
                    future.set_result(proba[start:stop])
                start = stop
