"""``POST /admin/reload``: load a version, warm it, swap it in; on failure keep serving."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException
from starlette.concurrency import run_in_threadpool

from serving.deps import Admin, State
from serving.schemas import ReloadRequest, ReloadResponse, errors
from serving.served import (
    LoadFailed,
    RegistryUnavailable,
    VersionNotFound,
    load_version,
    resolve,
)
from serving.state import AppState

router = APIRouter(tags=["admin"])
log = logging.getLogger(__name__)


@router.post("/admin/reload", response_model=ReloadResponse, dependencies=[Admin],
             responses=errors(400, 401, 403, 404, 409, 422, 503),
             summary="Hot-swap the served model (bearer token)")
async def reload(state: State, body: Annotated[ReloadRequest | None, Body()] = None) -> dict:
    """Loads ``version`` (or the current champion), warms it and swaps it in atomically.

    Requests in flight finish on the old model; the drift reference switches with the model.
    404: no such version; 422: it exists but cannot be loaded or warmed; 503: the registry is
    unreachable. In every failure the old model keeps serving and ``detail`` says why.
    Reloads are serialized; /predict is never blocked by one.

    409: other live servers share this prediction log (replicas behind a Service, or other
    local processes). A reload changes only the process that answers it, so it is refused
    unless ``this_replica_only`` is set: roll several replicas out together (the Kubernetes
    deployer patches the Deployment) or reload each by its own address.
    """
    version = None if body is None or body.version is None else str(body.version).strip()
    if version is not None and not version.isdigit():
        raise HTTPException(422, f"version {version!r} is not a registered version number")
    if body is None or not body.this_replica_only:
        others = await run_in_threadpool(_other_replicas, state)
        if others:
            raise HTTPException(409, (
                f"{len(others) + 1} live servers share this prediction log (this one and "
                f"{', '.join(others[:5])}{' ...' if len(others) > 5 else ''}); a reload "
                "would change only this one while the others keep the old version. Roll "
                "them out together (deploy_target=kubernetes patches the Deployment), or "
                "reload each by its own address with this_replica_only=true; nothing was "
                "changed"))
    return await run_in_threadpool(_reload, state, version)


def _other_replicas(state: AppState) -> list[str]:
    try:
        return state.other_replicas()
    except Exception as exc:  # cannot tell: refuse rather than half-deploy
        raise HTTPException(503, f"cannot tell which replicas share the prediction log "
                                 f"({type(exc).__name__}: {exc}); nothing was changed"
                            ) from None


def _reload(state: AppState, version: str | None) -> dict:
    with state.holder.reload_lock:
        before = state.holder.current
        previous = before.version if before is not None else None
        try:
            client, name, resolved, _ = resolve(state.settings, version, use_pin=False)
            if before is not None and (name, resolved) == (before.name, before.version):
                state.refresh_shadow(client)  # the challenger may have changed
                state.metrics.reloads.labels("unchanged").inc()
                return {"status": "unchanged", "model": before.info(),
                        "previous_version": previous, "shadow": state.shadow_info()}
            served = load_version(client, name, resolved)
        except VersionNotFound as exc:
            state.metrics.reloads.labels("failure").inc()
            raise HTTPException(404, f"{exc}; still serving version {previous}") from None
        except LoadFailed as exc:
            state.metrics.reloads.labels("failure").inc()
            raise HTTPException(422, f"{exc}; still serving version {previous}") from None
        except RegistryUnavailable as exc:
            state.metrics.reloads.labels("failure").inc()
            raise HTTPException(503, f"{exc}; still serving version {previous}") from None
        state.install(served)
        del before
        state.refresh_shadow(client)
        state.freeze_heap()
        state.metrics.reloads.labels("success").inc()
        log.info("reloaded %s: version %s -> %s (%s)", served.name, previous, served.version,
                 served.form)
        return {"status": "reloaded", "model": served.info(), "previous_version": previous,
                "shadow": state.shadow_info()}
