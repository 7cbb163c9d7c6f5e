"""``GET /model`` and ``GET /model/expectations``: what is served, and its data contract."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from serving.deps import CurrentModel, State
from serving.schemas import ModelInfo, errors

router = APIRouter(tags=["model"])


@router.get("/model", response_model=ModelInfo, responses=errors(503),
            summary="The served model: version, run, aliases, lineage, form")
async def model_info(model: CurrentModel, state: State) -> dict:
    """What answers callers, and what scores beside it (``shadow``: the shadow stage's
    challenger, or the previous champion on probation; null when nothing does)."""
    return {**model.info(), "shadow": state.shadow_info()}


@router.get("/model/expectations", response_model=dict[str, Any], responses=errors(503),
            summary="The served model's Great Expectations suite")
async def expectations(model: CurrentModel) -> dict[str, Any]:
    """The suite logged with the version at training, as stored (so the Airflow side needs
    no MLflow client to validate a window of live data)."""
    return model.bundle.suite
