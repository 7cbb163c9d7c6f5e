"""Run the server under uvicorn: one process, one event loop (replicas scale by process).

The socket is bound before the model loads, so a taken port fails in milliseconds with a
message; the model is loaded before uvicorn starts, so a missing champion is one line and
exit code 1 instead of a traceback.
"""

from __future__ import annotations

import errno
import logging
import socket

from driftloop.errors import DriftloopError
from driftloop.settings import Settings


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise DriftloopError(f"port {port} on {host} is already in use (another "
                                 "`driftloop serve`?); stop it or pick another port with "
                                 "--port or DRIFTLOOP_PORT") from None
        raise DriftloopError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


#: Seconds an idle HTTP/1.1 connection stays open. uvicorn's default (5 s) closes connections
#: that clients and proxies keep in their pools; one reused just as the server closes it fails
#: with "Server disconnected without sending a response" (seen here under load). 75 s outlasts
#: the idle timeouts of common load balancers (60 s), which then close first.
KEEP_ALIVE_S = 75


def serve(settings: Settings, *, log_level: str = "info", access_log: bool = False) -> None:
    import uvicorn

    from serving.app import create_app
    from serving.served import load

    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    sock = bind(settings.host, settings.port)
    try:
        logging.getLogger("driftloop.serving").info(
            "loading the model (%s) from %s ...",
            f"pinned version {settings.model_version}" if settings.model_version
            else "champion", settings.tracking_uri)
        model = load(settings)
        app = create_app(settings, model=model)
        logging.getLogger("driftloop.serving").info(
            "listening on http://%s:%d (docs: /docs, OpenAPI: /openapi.json)", settings.host,
            settings.port)
        config = uvicorn.Config(app, log_level=log_level, access_log=access_log,
                                loop="uvloop", http="httptools", lifespan="on",
                                timeout_graceful_shutdown=30,
                                timeout_keep_alive=KEEP_ALIVE_S)
        server = uvicorn.Server(config)
        server.run(sockets=[sock])
    finally:
        sock.close()
    if not server.started:
        raise DriftloopError("the server did not start (see the log above)")
