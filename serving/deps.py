"""Dependencies routes declare with ``Annotated``: the app state, the served model, admin."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.served import ServedModel
from serving.state import AppState


async def get_state(request: Request) -> AppState:
    return request.app.state.driftloop


State = Annotated[AppState, Depends(get_state)]


async def get_model(request: Request) -> ServedModel:
    """The model for this whole request (one read of the holder: reloads cannot mix)."""
    model = request.app.state.driftloop.holder.current
    if model is None:
        raise HTTPException(503, "no model loaded yet (the server is starting or its first "
                                 "load failed; see GET /ready)")
    return model


CurrentModel = Annotated[ServedModel, Depends(get_model)]

_bearer = HTTPBearer(auto_error=False, description="DRIFTLOOP_ADMIN_TOKEN")


async def require_admin(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 without a bearer token, 403 with a wrong one (compared in constant time)."""
    if credentials is None:
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer "
                                 "<DRIFTLOOP_ADMIN_TOKEN>'",
                            headers={"WWW-Authenticate": "Bearer"})
    expected = state.settings.admin_token
    if expected is None or not expected.get_secret_value():
        raise HTTPException(403, "reload is disabled: DRIFTLOOP_ADMIN_TOKEN is not set on the "
                                 "server")
    if not secrets.compare_digest(credentials.credentials.encode(),
                                  expected.get_secret_value().encode()):
        raise HTTPException(403, "wrong bearer token")


Admin = Depends(require_admin)
