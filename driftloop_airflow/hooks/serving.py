"""ServingHook: the driftloop server's HTTP API, as the DAGs need it.

Connection ``driftloop_serving``: host (and port, scheme) of the server; the password, when
set, is sent as ``Authorization: Bearer``. Extras: ``timeout`` (seconds, default 30).

Every failure names the URL, the status and the server's ``detail``, so a failed task says
what to fix. The same request builders serve the sync hook (tasks) and the async client
(triggers), so both send exactly the same requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
from airflow.sdk import BaseHook

from driftloop_airflow.config import SERVING_CONN_ID
from driftloop_airflow.window import iso

#: Rows per ``/drift/window`` page when exporting a window.
PAGE_ROWS = 5000


class ServingError(RuntimeError):
    """The server could not be reached or refused a request; the message says which."""


@dataclass(frozen=True)
class ServingEndpoint:
    """Where the server answers and how to authenticate: built from a Connection."""

    base_url: str
    token: str | None = None
    timeout: float = 30.0
    conn_id: str | None = field(default=None, compare=False)

    @classmethod
    def from_connection(cls, conn: Any) -> ServingEndpoint:
        extra = conn.extra_dejson or {}
        return cls(base_url=connection_base_url(conn, default_scheme="http"),
                   token=conn.password or None, timeout=float(extra.get("timeout", 30.0)),
                   conn_id=conn.conn_id)

    @property
    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, headers=self.headers, timeout=self.timeout)

    def async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                 timeout=self.timeout)

    def check(self, response: httpx.Response) -> httpx.Response:
        """The response if 2xx, else a ServingError with the server's own explanation."""
        if response.is_success:
            return response
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise ServingError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code}: {str(detail)[:500]}"
        )

    def unreachable(self, exc: httpx.HTTPError) -> ServingError:
        via = f" (connection {self.conn_id!r})" if self.conn_id else ""
        return ServingError(
            f"cannot reach the driftloop server at {self.base_url}{via}: {exc!r}; "
            "is `driftloop serve` running there?"
        )


def connection_base_url(conn: Any, *, default_scheme: str) -> str:
    """``scheme://host:port`` from an Airflow Connection (host may carry the scheme)."""
    host = (conn.host or "").rstrip("/")
    if not host:
        raise ServingError(f"connection {conn.conn_id!r} has no host")
    if "://" not in host:
        host = f"{conn.schema or default_scheme}://{host}"
    if conn.port and host.count(":") < 2:
        host = f"{host}:{conn.port}"
    return host


def window_params(start: datetime | str, end: datetime | str, **extra: Any) -> dict[str, Any]:
    return {"start": iso(start), "end": iso(end), **extra}


class ServingHook(BaseHook):
    """Sync access to the server from tasks: health, drift, metrics, windows, expectations."""

    conn_name_attr = "serving_conn_id"
    default_conn_name = SERVING_CONN_ID
    conn_type = "http"
    hook_name = "driftloop serving"

    def __init__(self, serving_conn_id: str = SERVING_CONN_ID,
                 endpoint: ServingEndpoint | None = None) -> None:
        super().__init__()
        self.serving_conn_id = serving_conn_id
        self._endpoint = endpoint

    @property
    def endpoint(self) -> ServingEndpoint:
        if self._endpoint is None:
            self._endpoint = ServingEndpoint.from_connection(
                self.get_connection(self.serving_conn_id))
        return self._endpoint

    def get_conn(self) -> httpx.Client:
        return self.endpoint.client()

    def _get(self, path: str, params: dict[str, Any] | None = None) -> httpx.Response:
        endpoint = self.endpoint
        try:
            with endpoint.client() as client:
                return endpoint.check(client.get(path, params=params))
        except httpx.HTTPError as exc:
            raise endpoint.unreachable(exc) from exc

    # --- the API ------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``/health`` then ``/ready``: alive, and a model loaded and warm."""
        alive = self._get("/health").json()
        ready = self._get("/ready").json()
        return {"health": alive, "ready": ready}

    def model(self) -> dict[str, Any]:
        return self._get("/model").json()

    def expectations(self) -> dict[str, Any]:
        """The champion's Great Expectations suite (the stored dict)."""
        return self._get("/model/expectations").json()

    def drift_status(self, start: datetime | str, end: datetime | str) -> dict[str, Any]:
        return self._get("/drift/status", window_params(start, end)).json()

    def window_page(self, start: datetime | str, end: datetime | str, *,
                    limit: int = PAGE_ROWS, offset: int = 0) -> dict[str, Any]:
        return self._get("/drift/window",
                         window_params(start, end, limit=limit, offset=offset)).json()

    def window_total(self, start: datetime | str, end: datetime | str) -> int:
        """Rows logged in ``[start, end)``, without transferring them."""
        return int(self.window_page(start, end, limit=1)["total"])

    def export_window(self, start: datetime | str, end: datetime | str, *,
                      page_rows: int = PAGE_ROWS, max_rows: int | None = None,
                      ) -> list[dict[str, Any]]:
        """Every logged row of ``[start, end)``, page by page (up to ``max_rows``)."""
        rows: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            limit = page_rows if max_rows is None else min(page_rows, max_rows - len(rows))
            if limit <= 0:
                break
            page = self.window_page(start, end, limit=limit, offset=offset)
            rows.extend(page["rows"])
            offset = page.get("next_offset")
        return rows

    def put_report(self, name: str, body: str,
                   content_type: str = "text/html") -> str:
        """Store a report with the prediction log (``PUT /reports/<name>``, bearer token);
        returns the absolute URL a person opens it at."""
        endpoint = self.endpoint
        try:
            with endpoint.client() as client:
                response = endpoint.check(client.put(
                    f"/reports/{name}", content=body.encode(),
                    headers={"Content-Type": f"{content_type}; charset=utf-8"}))
        except httpx.HTTPError as exc:
            raise endpoint.unreachable(exc) from exc
        return endpoint.base_url.rstrip("/") + response.json()["url"]

    def apply_retention(self, timeout: float = 900.0) -> dict[str, Any]:
        """``POST /admin/retention`` (bearer token): what the server removed and why. A
        long timeout: a first run on a large log deletes in many batches."""
        endpoint = self.endpoint
        try:
            with endpoint.client() as client:
                client.timeout = httpx.Timeout(max(endpoint.timeout, timeout))
                return endpoint.check(client.post("/admin/retention")).json()
        except httpx.HTTPError as exc:
            raise endpoint.unreachable(exc) from exc

    def metrics_text(self) -> str:
        return self._get("/metrics").text

    def metrics(self) -> dict[str, dict[str, Any]]:
        """``/metrics`` parsed with prometheus_client's parser (driftloop_* families only)."""
        return parse_metrics(self.metrics_text())


def parse_metrics(text: str, prefix: str = "driftloop_") -> dict[str, dict[str, Any]]:
    """Prometheus text -> ``{family: {type, help, samples: [{name, labels, value}]}}``."""
    from prometheus_client.parser import text_string_to_metric_families

    families: dict[str, dict[str, Any]] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith(prefix):
            continue
        families[family.name] = {
            "type": family.type,
            "help": family.documentation,
            "samples": [{"name": s.name, "labels": dict(s.labels), "value": s.value}
                        for s in family.samples],
        }
    return families


async def async_window_total(endpoint: ServingEndpoint, start: str, end: str) -> int:
    """The trigger's poll: rows in ``[start, end)`` (same request as ServingHook)."""
    try:
        async with endpoint.async_client() as client:
            response = await client.get("/drift/window", params=window_params(start, end,
                                                                              limit=1, offset=0))
    except httpx.HTTPError as exc:
        raise endpoint.unreachable(exc) from exc
    return int(endpoint.check(response).json()["total"])
