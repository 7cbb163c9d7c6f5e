"""``POST /admin/retention``: old rows leave the prediction log (bearer token).

The server runs it because the server is what every shape already trusts with the log and
the registry: the Airflow task in the cluster has neither the log's credentials nor MLflow's
SDK. It runs off the event loop, in bounded batches, so /predict keeps answering.
"""

from __future__ import annotations

import logging
import threading

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from driftloop import retention
from driftloop.errors import DriftloopError
from serving.deps import Admin, State
from serving.schemas import RetentionResponse, errors
from serving.state import AppState

router = APIRouter(tags=["admin"])
log = logging.getLogger(__name__)
_running = threading.Lock()


@router.post("/admin/retention", response_model=RetentionResponse, dependencies=[Admin],
             responses=errors(401, 403, 409, 503),
             summary="Delete rows past retention (bearer token)")
async def apply_retention(state: State) -> dict:
    """Deletes predictions, labels and reports older than ``DRIFTLOOP_LOG_RETENTION_DAYS``
    (archived to ``DRIFTLOOP_LOG_ARCHIVE_URL`` first, if set), except what the champion's and
    the previous version's training windows need. Returns what it decided and removed.

    409: a retention run is already in progress in this server. 503: the log, the registry
    or the archive could not be used; ``detail`` says which, and nothing more was deleted.
    """
    if not _running.acquire(blocking=False):
        raise HTTPException(409, "a retention run is already in progress on this server")
    try:
        return await run_in_threadpool(_apply, state)
    finally:
        _running.release()


def _apply(state: AppState) -> dict:
    from driftloop.registry import connect

    if state.log is None:
        raise HTTPException(503, "the prediction log is not open")
    try:
        summary = retention.apply(state.settings, state.log, connect(state.settings))
    except DriftloopError as exc:
        raise HTTPException(503, str(exc)) from None
    except Exception as exc:  # the database went away mid-run: what was done stays done
        log.exception("retention failed")
        raise HTTPException(503, f"retention failed: {type(exc).__name__}: {exc}") from None
    for table in ("predictions", "labels", "reports"):
        state.metrics.retention_deleted.labels(table).inc(summary.get(f"{table}_deleted", 0))
    return summary
