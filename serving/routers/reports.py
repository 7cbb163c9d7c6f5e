"""``/reports``: reports stored with the prediction log, for people to open in a browser.

The drift monitor's validation report of a window is written by a task whose pod is gone
when it ends (cluster) or whose disk is not the reader's; stored here, with the log every
shape shares, it stays one link away (the task's XCom ``report_url``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from driftloop.predlog import BadReport
from driftloop.predlog.reports import CONTENT_TYPES, NAME_PATTERN
from serving.deps import Admin, State
from serving.schemas import ReportInfo, ReportList, errors

router = APIRouter(tags=["reports"])


#: The body is stored as sent, whatever it holds (any schema).
_BODY = {"requestBody": {"required": True, "content": {
    kind: {"schema": {}} for kind in CONTENT_TYPES}}}
Name = Annotated[str, Path(min_length=1, max_length=255, pattern=NAME_PATTERN,
                           description="Letters, digits and ._:+- in /-separated parts.",
                           examples=["validation/driftloop_drift_monitor__manual__1.html"])]


@router.put("/reports/{name:path}", response_model=ReportInfo, status_code=201,
            dependencies=[Admin], responses=errors(401, 403, 404, 413, 422, 503),
            summary="Store a report (bearer token)", openapi_extra=_BODY)
async def put_report(name: Name, request: Request, state: State,
                     content_type: Annotated[str, Header()] = "text/html") -> dict:
    """The body, stored under ``name`` (a rerun replaces it). Content types:
    ``text/html``, ``text/markdown``, ``application/json``, ``text/plain``."""
    body = await request.body()
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind not in CONTENT_TYPES:
        raise HTTPException(422, f"content type {kind!r} is not stored (one of: "
                                 f"{', '.join(CONTENT_TYPES)})")
    try:
        report = await run_in_threadpool(state.log.put_report, name, body, kind)
    except BadReport as exc:
        raise HTTPException(422, str(exc)) from None
    return {"name": report.name, "url": f"/reports/{report.name}", "bytes": len(report.body),
            "content_type": report.content_type}


@router.get("/reports", response_model=ReportList, responses=errors(422, 503),
            summary="List stored reports, newest first")
async def list_reports(state: State, prefix: Annotated[str, Query(max_length=255)] = "",
                       limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    found = await run_in_threadpool(state.log.list_reports, prefix, limit)
    return {"reports": [{"name": name, "url": f"/reports/{name}", "bytes": size}
                        for name, size, _ in found]}


@router.get("/reports/{name:path}", responses=errors(404, 422, 503),
            response_class=Response, summary="Open a stored report")
async def get_report(name: Name, state: State) -> Response:
    report = await run_in_threadpool(state.log.get_report, name)
    if report is None:
        raise HTTPException(404, f"no report named {name!r} (GET /reports lists them)")
    return Response(report.body, media_type=report.content_type)
