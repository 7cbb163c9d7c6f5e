"""The app factory: ``create_app(settings)`` builds one serving app with its own state.

The lifespan opens the prediction log and starts its writer, loads the model (the version
pinned by ``DRIFTLOOP_MODEL_VERSION``, else the ``champion``), warms it, and on shutdown
(SIGTERM included) drains the log before the process exits.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from driftloop import __version__
from driftloop.errors import DriftloopError
from driftloop.predlog.codec import masked_url
from driftloop.settings import Settings, get_settings
from serving import errors, openapi
from serving.middleware import ServingMiddleware
from serving.routers import (
    admin,
    drift,
    feedback,
    health,
    metrics,
    predict,
    reports,
    retention,
)
from serving.routers import model as model_router
from serving.served import ServedModel, load
from serving.state import AppState

log = logging.getLogger("driftloop.serving")

DESCRIPTION = """\
Serves the champion model of a driftloop registry, logs every served row durably, and
answers for drift of live inputs against the model's training reference.

Every error is `{"detail": "<what was wrong>"}` with a 4xx status (5xx only when the server
itself cannot work: no model loaded yet, registry unreachable).
"""


class StartupError(DriftloopError):
    """The server cannot start serving (no model, unusable log)."""


def create_app(settings: Settings | None = None, *, model: ServedModel | None = None) -> FastAPI:
    """A serving app. ``model``: an already loaded model (the CLI loads it before binding
    uvicorn so that a missing champion is a one-line error, not a traceback)."""
    settings = settings or get_settings()
    state = AppState(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            await run_in_threadpool(state.open_log)
        except Exception as exc:
            message = (f"prediction log {settings.log_url} cannot be opened "
                       f"({type(exc).__name__}: {exc})")
            log.error("driftloop serving cannot start: %s", message)
            raise StartupError(message) from None
        try:
            served = model if model is not None else await run_in_threadpool(load, settings)
        except DriftloopError as exc:
            log.error("driftloop serving cannot start: %s", exc)
            await run_in_threadpool(state.close_log)
            raise StartupError(str(exc)) from None
        state.install(served)
        await run_in_threadpool(state.refresh_shadow)
        state.freeze_heap()
        log.info("serving %s version %s (%s); prediction log %s", served.name, served.version,
                 served.form, masked_url(settings.log_url))
        try:
            yield
        finally:
            await run_in_threadpool(state.close_log)
            gc.unfreeze()

    # Swagger UI (/docs) and ReDoc (/redoc) from assets in the fastapi-offline package,
    # not a CDN: the pages work offline and in an air-gapped cluster.
    app: FastAPI = FastAPIOffline(title="driftloop serving", version=__version__,
                                  description=DESCRIPTION, lifespan=lifespan)
    app.state.driftloop = state
    for router in (predict.router, feedback.router, health.router, model_router.router,
                   drift.router, admin.router, retention.router, metrics.router,
                   reports.router):
        app.include_router(router)
    errors.install(app)
    openapi.install(app, lambda: state.holder.current)
    app.add_middleware(ServingMiddleware, state=state)
    if settings.cors_origins:
        # Outermost, so that its headers cover the /predict fast path too.
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins,
                           allow_methods=["GET", "POST"], allow_headers=["*"])
    return app

