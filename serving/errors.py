"""Every error is ``{"detail": "<one line naming the problem>"}`` with a 4xx status.

FastAPI's default validation error is a list of pydantic records; clients (and the Airflow
hooks) read one ``detail`` string, so validation errors are flattened into one line that
names the field. Malformed JSON is a 400 that says where parsing stopped. A prediction log
whose database cannot be reached is a 503 that says so.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

log = logging.getLogger(__name__)


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out or "body"


def validation_message(errors: Sequence[Any]) -> tuple[int, str]:
    """``(status, one-line detail)`` for pydantic/FastAPI validation errors."""
    for err in errors:
        if err.get("type") == "json_invalid":
            why = (err.get("ctx") or {}).get("error", "invalid JSON")
            pos = err["loc"][-1] if err.get("loc") else None
            where = f" at character {pos}" if isinstance(pos, int) else ""
            return 400, f"malformed JSON body: {why}{where}"
    parts = []
    for err in errors[:5]:
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        if err.get("type") == "missing" and err.get("loc") == ("body",):
            parts.append("a JSON body is required")
            continue
        where = _where(tuple(err.get("loc", ())))
        if err.get("type") == "extra_forbidden":
            msg = "unknown field"
        parts.append(f"{where}: {msg}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return 422, "invalid request: " + "; ".join(parts) + more


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        status, message = validation_message(exc.errors())
        return JSONResponse({"detail": message}, status_code=status)

    from serving.inputs import InputError

    @app.exception_handler(InputError)
    async def _input(_request: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    from sqlalchemy.exc import OperationalError

    @app.exception_handler(OperationalError)
    async def _log_unavailable(_request: Request, exc: OperationalError) -> JSONResponse:
        # The prediction log's database is away: the endpoints that read it cannot answer,
        # but this is not a server bug (no traceback); /predict keeps serving meanwhile.
        cause = str(exc.orig or exc).strip().splitlines()[0][:300]
        log.warning("prediction log unavailable: %s", cause)
        return JSONResponse({"detail": f"prediction log unavailable ({cause}); predictions "
                                       "are still served, retry later"}, status_code=503)

    @app.exception_handler(HTTPException)
    async def _http(_request: Request, exc: HTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        return JSONResponse({"detail": detail}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
