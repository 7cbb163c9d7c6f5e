"""``GET /drift/status`` and ``GET /drift/window``: drift and data of live traffic.

Both read the prediction log, never this process's memory: every replica answers the same,
a restart forgets nothing, and a past interval can be evaluated again (Airflow asks for each
data interval and for backfills).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.concurrency import run_in_threadpool

from driftloop.drift import Thresholds
from driftloop.predlog import from_micros, to_micros
from serving.deps import CurrentModel, State
from serving.inputs import InputError
from serving.schemas import DriftStatus, IsoDateTime, WindowPage, errors
from serving.served import ServedModel
from serving.state import AppState

router = APIRouter(tags=["drift"])

#: Rows per /drift/window page at most.
PAGE_MAX_ROWS = 10_000

Start = Annotated[IsoDateTime | None, Query(
    description="Interval start (ISO-8601, inclusive; naive means UTC).")]
End = Annotated[IsoDateTime | None, Query(
    description="Interval end (ISO-8601, exclusive; naive means UTC).")]


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _interval(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime] | None:
    if start is None and end is None:
        return None
    if start is None or end is None:
        raise InputError("give both 'start' and 'end' (an interval), or neither (the latest "
                         "rows)")
    start, end = _utc(start), _utc(end)
    if start >= end:
        raise InputError(f"'start' ({start.isoformat()}) must be before 'end' "
                         f"({end.isoformat()})")
    return start, end


@router.get("/drift/status", response_model=DriftStatus, responses=errors(422, 503),
            summary="Drift of live inputs against the training reference")
async def drift_status(
    model: CurrentModel, state: State, start: Start = None, end: End = None,
    rows: Annotated[int | None, Query(
        ge=1, le=1_000_000,
        description="Latest-rows mode: window size (default DRIFTLOOP_DRIFT_WINDOW_ROWS).")
    ] = None,
) -> dict:
    """Per feature the test, statistic, p-value (raw and corrected), effect size and verdict;
    the dataset verdict; the window; the reference; the thresholds.

    With ``start`` and ``end``: exactly the rows logged in ``[start, end)`` (an even sample
    when there are more than DRIFTLOOP_DRIFT_MAX_WINDOW_ROWS). Without: the most recent rows.
    Under DRIFTLOOP_DRIFT_MIN_ROWS rows the status is ``insufficient_data``.
    """
    interval = _interval(start, end)
    if interval is not None and rows is not None:
        raise InputError("'rows' selects the latest rows; it cannot be combined with "
                         "'start'/'end'")
    report = await run_in_threadpool(evaluate, state, model, interval, rows)
    state.metrics.set_drift(report, time.time())
    return report


def evaluate(state: AppState, model: ServedModel, interval: tuple[datetime, datetime] | None,
             rows: int | None) -> dict[str, Any]:
    """The drift report of a window (runs in a worker thread: it reads the database)."""
    s = state.settings
    k, m = len(model.numeric), len(model.categorical)
    if interval is not None:
        window = state.log.interval_window(model.name, interval[0], interval[1], k, m,
                                           max_rows=s.drift_max_window_rows)
        bounds = {"mode": "interval", "start": interval[0], "end": interval[1]}
    else:
        window = state.log.latest_window(model.name, min(rows or s.drift_window_rows,
                                                         s.drift_max_window_rows), k, m)
        bounds = {"mode": "latest",
                  "start": None if window.first_ts is None else from_micros(window.first_ts),
                  "end": None if window.last_ts is None else from_micros(window.last_ts)}
    thresholds = Thresholds.from_settings(s)
    if interval is not None:
        span: tuple[int, int] | None = (to_micros(interval[0]), to_micros(interval[1]))
    elif window.first_ts is not None and window.last_ts is not None:
        span = (window.first_ts, window.last_ts + 1)  # the latest rows: both ends included
    else:
        span = None
    refused = state.log.refusal_counts(model.name, *span) if span is not None else {}
    per_feature = {feature: sum(reasons.values()) for feature, reasons in refused.items()}
    if window.sampled:  # the tests read an even sample: refusals scale with it
        scale = window.rows / window.total_rows
        per_feature = {f: round(n * scale) for f, n in per_feature.items()}
    result = model.reference.evaluate(window.numeric, window.categorical, thresholds,
                                      refused=per_feature)
    report = result.as_dict()
    report["refused"] = _refused(refused, window.total_rows)
    report.update(output_drift(state, model, span, thresholds))
    report["window"] = {**bounds, "rows": window.rows, "rows_total": window.total_rows,
                        "sampled": window.sampled}
    report["reference"] = {"model_version": model.version, "rows": model.reference.rows}
    report["model"] = {"name": model.name, "version": model.version}
    report["message"] = None
    if result.status == "insufficient_data":
        report["message"] = (f"{window.rows} row(s) in the window, fewer than the minimum of "
                             f"{thresholds.min_rows} (DRIFTLOOP_DRIFT_MIN_ROWS)")
        if report["refused"]["rows"]:  # the rows that never made it say why
            report["message"] += f"; {report['refused']['description']}"
    return report


def _refused(counts: dict[str, dict[str, int]], served: int) -> dict[str, Any]:
    """The window's refused rows: how many, their share of served plus refused, per feature
    and reason, and a sentence."""
    rows = sum(sum(reasons.values()) for reasons in counts.values())
    rate = rows / (rows + served) if rows else 0.0
    worst = sorted(counts.items(), key=lambda kv: -sum(kv[1].values()))
    named = ", ".join(f"{feature} ({', '.join(f'{r} {n}' for r, n in sorted(why.items()))})"
                      for feature, why in worst[:3])
    description = (f"{rows} row(s) refused for bad values ({rate:.0%} of the window): {named}"
                   if rows else "no rows refused")
    return {"rows": rows, "rate": rate, "by_feature": counts, "description": description}


def output_drift(state: AppState, model: ServedModel, bounds: tuple[int, int] | None,
                 thresholds: Thresholds) -> dict[str, Any]:
    """Prediction and label drift of the rows logged in ``bounds`` (microseconds,
    ``[start, end)``): all of them, also where the feature tests read an even sample, since
    two GROUP BY counts cost little."""
    predicted: dict[str, int] = {}
    labelled: dict[str, int] = {}
    if bounds is not None:
        predicted, labelled = state.log.output_counts(model.name, *bounds)
    task = model.task
    prediction = task.output_drift("prediction", model.prediction_reference, predicted,
                                   thresholds)
    label = task.output_drift("label", model.label_reference, labelled, thresholds)
    return {"prediction": prediction, "label": label,
            "prediction_drift": bool(prediction["drifted"]),
            "label_drift": bool(label["drifted"])}


@router.get("/drift/window", response_model=WindowPage, responses=errors(422, 503),
            summary="The logged rows of an interval, paginated")
async def drift_window(
    model: CurrentModel, state: State,
    start: Annotated[IsoDateTime, Query(description="Interval start (ISO-8601, inclusive).")],
    end: Annotated[IsoDateTime, Query(description="Interval end (ISO-8601, exclusive).")],
    limit: Annotated[int, Query(ge=1, le=PAGE_MAX_ROWS)] = 1000,
    offset: Annotated[int, Query(ge=0, le=2**53)] = 0,
) -> dict:
    """Rows in ``[start, end)`` in time order, each with its features by name, prediction
    and feedback label (null without one); Airflow validates them with Great Expectations.
    Follow ``next_offset`` until it is null."""
    interval = _interval(start, end)
    assert interval is not None
    page, total = await run_in_threadpool(
        state.log.interval_rows, model.name, interval[0], interval[1], limit=limit,
        offset=offset, numeric=model.numeric, categorical=model.categorical)
    following = offset + len(page)
    return {"rows": page, "total": total, "offset": offset, "limit": limit,
            "next_offset": following if following < total and page else None}
