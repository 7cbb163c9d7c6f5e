"""``POST /feedback``: ground truth by request id, joined to the log's rows when read.

A label is never refused for an id the log does not hold yet: with several replicas, or a
log that is briefly slow, the prediction's row may land after its label. It is stored and
reported as ``not_yet_matched`` (see :mod:`driftloop.predlog.labels`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serving.deps import CurrentModel, State
from serving.inputs import InputError
from serving.schemas import FeedbackRequest, FeedbackResponse, errors
from serving.served import ServedModel

router = APIRouter(tags=["feedback"])


def _parsed(pairs: list[tuple[str, Any]], model: ServedModel) -> list[tuple[str, str]]:
    """Labels as the log stores them (the task's text form); every refused one is named,
    and nothing of the call is stored (422)."""
    out: list[tuple[str, str]] = []
    bad: dict[str, str] = {}
    for rid, label in pairs:
        try:
            out.append((rid, model.task.parse_label(label, model.labels)))
        except ValueError as exc:
            bad.setdefault(repr(label), str(exc))
    if bad:
        shown = list(bad.values())[:5]
        more = f" (and {len(bad) - 5} more)" if len(bad) > 5 else ""
        raise InputError(f"{len(bad)} refused label value(s), nothing recorded: "
                         f"{'; '.join(shown)}{more}")
    return out


@router.post("/feedback", response_model=FeedbackResponse,
             responses=errors(400, 413, 422, 503), summary="Record ground-truth labels")
async def feedback(body: FeedbackRequest, model: CurrentModel, state: State) -> dict:
    """One ``request_id`` + ``label``, or ``labels`` (many); a repeated id keeps its first
    label. A classifier's label is one of its classes; a regressor's is the true value (a
    number). A call with a label the model cannot take is refused whole (422). An id whose
    prediction is not in the log yet is stored all the same and listed in ``not_yet_matched``:
    it joins its prediction as soon as that row is written (another replica may have served
    it a moment ago). One still unmatched after
    ``DRIFTLOOP_FEEDBACK_ORPHAN_GRACE_S`` counts in ``driftloop_feedback_orphans``."""
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
    pairs = _parsed(pairs, model)
    result = await run_in_threadpool(state.log.add_feedback, pairs)
    counter = state.metrics.feedback
    if model.task.exact_match:
        counter.labels("correct").inc(result.correct)
        counter.labels("incorrect").inc(result.matched - result.correct)
    else:  # a value is measured, not right or wrong: see driftloop_live_mae
        counter.labels("matched").inc(result.matched)
    counter.labels("not_yet_matched").inc(len(result.not_yet_matched))
    return {"recorded": result.recorded, "already_recorded": result.already_recorded,
            "not_yet_matched": result.not_yet_matched}
