"""``POST /feedback``: ground truth by request id, joined to the log's rows."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from starlette.concurrency import run_in_threadpool

from driftloop.predlog import FeedbackResult, UnknownRequestIds
from serving.deps import CurrentModel, State
from serving.inputs import InputError
from serving.schemas import FeedbackRequest, FeedbackResponse, errors
from serving.state import AppState

router = APIRouter(tags=["feedback"])


@router.post("/feedback", response_model=FeedbackResponse,
             responses=errors(400, 404, 413, 422, 503), summary="Record ground-truth labels")
async def feedback(body: FeedbackRequest, model: CurrentModel, state: State) -> dict:
    """One ``request_id`` + ``label``, or ``labels`` (many). Unknown ids are a 404 that
    names them, and then nothing is recorded; a repeated id keeps its first label."""
    if body.labels is not None:
        if body.request_id is not None or body.label is not None:
            raise InputError("give either 'request_id' and 'label', or 'labels', not both")
        pairs = [(item.request_id, item.label) for item in body.labels]
        if not pairs:
            raise InputError("empty batch: 'labels' has no items")
    elif body.request_id is not None and body.label is not None:
        pairs = [(body.request_id, body.label)]
    else:
        raise InputError("give 'request_id' and 'label' (one label) or 'labels' (a list of "
                         "them)")
    if len(pairs) > state.settings.max_batch_rows:
        raise InputError(f"{len(pairs)} labels are over the limit of "
                         f"{state.settings.max_batch_rows} per call (DRIFTLOOP_MAX_BATCH_ROWS)",
                         status=413)
    allowed = set(model.labels)
    bad = sorted({label for _, label in pairs if label not in allowed})
    if bad:
        raise InputError(f"unknown label(s) {', '.join(map(repr, bad))}; the model's labels "
                         f"are {', '.join(model.labels)}")
    try:
        result = await run_in_threadpool(_record, state, pairs)
    except UnknownRequestIds as exc:
        raise HTTPException(404, str(exc)) from None
    if result.recorded:
        state.metrics.feedback.labels("correct").inc(result.correct)
        state.metrics.feedback.labels("incorrect").inc(len(result.recorded) - result.correct)
    return {"recorded": result.recorded, "already_recorded": result.already_recorded}


def _record(state: AppState, pairs: list[tuple[str, str]]) -> FeedbackResult:
    try:
        return state.log.add_feedback(pairs)
    except UnknownRequestIds:
        # A prediction served a moment ago may still sit in this replica's write queue.
        if state.writer is None or not state.writer.pending_rows:
            raise
        state.writer.flush(timeout=5.0)
        return state.log.add_feedback(pairs)
