"""``GET /health`` (the process answers) and ``GET /ready`` (a warmed model is loaded)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from serving.deps import State
from serving.schemas import HealthResponse, ReadyResponse, errors

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthResponse, summary="Liveness")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", response_model=ReadyResponse, responses=errors(503), summary="Readiness")
async def ready(state: State) -> dict:
    """200 once a model is loaded and answered its warm-up prediction, else 503."""
    model = state.holder.current
    if model is None:
        raise HTTPException(503, "not ready: no model loaded yet")
    return {"status": "ready", "model": {"name": model.name, "version": model.version}}
