"""A recording stand-in for the KFP API server (v2beta1), over real HTTP.

No KFP API server can run here (it needs a cluster). This one records every request it
receives and answers with KFP-shaped JSON, so the tests can check the exact requests the
hook sends — and that they equal the ones kfp-server-api's generated client sends — and
how the hook maps the answers.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeKfpApi:
    experiments: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: run_id -> states returned by successive GETs (the last one repeats)
    state_sequence: dict[str, list[str]] = field(default_factory=dict)
    #: (method, path regex) -> (status, body): forced error answers
    errors: dict[tuple[str, str], tuple[int, dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""

    def answer(self, method: str, path: str, body: Any) -> tuple[int, dict[str, Any]]:
        for (m, pattern), reply in self.errors.items():
            if m == method and re.fullmatch(pattern, path):
                return reply
        api = "/apis/v2beta1"
        if method == "GET" and path == f"{api}/experiments":
            return 200, ({"experiments": self.experiments, "total_size": len(self.experiments)}
                         if self.experiments else {})
        if method == "POST" and path == f"{api}/experiments":
            experiment = {"experiment_id": f"exp-{len(self.experiments) + 1}",
                          "display_name": body["display_name"],
                          "created_at": "2026-01-01T00:00:00Z", "storage_state": "AVAILABLE"}
            self.experiments.append(experiment)
            return 200, experiment
        if method == "POST" and path == f"{api}/runs":
            run_id = f"run-{len(self.runs) + 1}"
            run = {"run_id": run_id, "display_name": body.get("display_name"),
                   "experiment_id": body.get("experiment_id"), "state": "PENDING",
                   "created_at": "2026-01-01T10:00:00Z",
                   "finished_at": "1970-01-01T00:00:00Z"}
            self.runs[run_id] = run
            return 200, run
        if method == "GET" and path == f"{api}/runs":
            runs = sorted(self.runs.values(), key=lambda r: r["created_at"], reverse=True)
            return 200, {"runs": runs, "total_size": len(runs)} if runs else {}
        match = re.fullmatch(rf"{api}/runs/([^/:]+)(:terminate)?", path)
        if match and match.group(1) in self.runs:
            run = self.runs[match.group(1)]
            if match.group(2):
                run["state"] = "CANCELING"
                return 200, {}
            sequence = self.state_sequence.get(run["run_id"])
            if sequence:
                run["state"] = sequence.pop(0) if len(sequence) > 1 else sequence[0]
            return 200, run
        if match:
            return 404, {"error": f"run {match.group(1)} not found", "code": 5,
                         "message": f"Failed to get run: run {match.group(1)} not found"}
        return 404, {"error": "no such route", "code": 5, "message": f"no route {path}"}


@contextmanager
def recording_server(answer: Callable[[str, str, Any], tuple[int, Any]]
                     ) -> Iterator[tuple[str, list[Recorded]]]:
    """A real HTTP server on a free port that records every request and replies
    ``answer(method, path, body)``; yields its URL and the recorded requests."""
    requests: list[Recorded] = []

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body: Any = None
            if raw:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
            requests.append(Recorded(self.command, parts.path, parse_qsl(parts.query),
                                     {k.lower(): v for k, v in self.headers.items()}, body))
            status, reply = answer(self.command, parts.path, body)
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def running_fake_kfp(api: FakeKfpApi | None = None) -> Iterator[FakeKfpApi]:
    api = api or FakeKfpApi()
    with recording_server(api.answer) as (url, requests):
        api.url = url
        api.requests = requests
        yield api
