"""The cluster backend of KfpHook: Kubeflow Pipelines' REST API v2beta1 over plain HTTP.

Not the kfp SDK: it pins ``kubernetes<31`` and the Airflow image carries the cncf.kubernetes
provider (``kubernetes>=36``). The requests are the ones ``kfp.Client`` sends (the tests
compare them with kfp-server-api's generated client):

- find or create the experiment: ``GET /apis/v2beta1/experiments?filter=...``, ``POST
  /apis/v2beta1/experiments``;
- create a run: ``POST /apis/v2beta1/runs`` with the compiled YAML inline as
  ``pipeline_spec`` (what ``create_run_from_pipeline_package`` does) or a
  ``pipeline_version_reference`` to an uploaded pipeline version;
- read a run: ``GET /apis/v2beta1/runs/{id}``; list recent runs of the experiment:
  ``GET /apis/v2beta1/runs?experiment_id=...&sort_by=created_at desc``;
- terminate: ``POST /apis/v2beta1/runs/{id}:terminate``.

Multi-user KFP wants a bearer token: the connection's password, or a projected
service-account token file (``token_path``, re-read on every request because it rotates).
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from driftloop_airflow.hooks.kfp_run import UNSPECIFIED, KfpRun
from driftloop_airflow.hooks.serving import connection_base_url

API = "/apis/v2beta1"
#: Where KFP's multi-user setup mounts the token (same default as kfp.Client).
DEFAULT_SA_TOKEN_PATH = "/var/run/secrets/kubeflow/pipelines/token"
SA_TOKEN_ENV = "KF_PIPELINES_SA_TOKEN_PATH"


class KfpApiError(RuntimeError):
    """The KFP API refused a request or could not be reached; the message says which."""


@dataclass(frozen=True)
class RestConfig:
    base_url: str
    experiment: str = "driftloop"
    experiment_id: str | None = None
    namespace: str | None = None
    pipeline_package: str | None = None
    pipeline_id: str | None = None
    pipeline_version_id: str | None = None
    service_account: str | None = None
    pipeline_root: str | None = None
    token: str | None = None
    token_path: str | None = None
    timeout: float = 30.0
    verify: bool = True
    ui_url: str | None = None

    @classmethod
    def from_connection(cls, conn: Any, default_package: str | None = None) -> RestConfig:
        extra = conn.extra_dejson or {}
        token_path = extra.get("token_path")
        if token_path is None and not conn.password and extra.get("use_sa_token", False):
            token_path = os.environ.get(SA_TOKEN_ENV, DEFAULT_SA_TOKEN_PATH)
        return cls(
            base_url=connection_base_url(conn, default_scheme="http"),
            experiment=extra.get("experiment", "driftloop"),
            experiment_id=extra.get("experiment_id"),
            namespace=extra.get("namespace"),
            pipeline_package=extra.get("pipeline_package", default_package),
            pipeline_id=extra.get("pipeline_id"),
            pipeline_version_id=extra.get("pipeline_version_id"),
            service_account=extra.get("service_account"),
            pipeline_root=extra.get("pipeline_root"),
            token=conn.password or None,
            token_path=token_path,
            timeout=float(extra.get("timeout", 30.0)),
            verify=bool(extra.get("verify", True)),
            ui_url=extra.get("ui_url"),
        )

    def headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.token
        if self.token_path:
            try:
                token = Path(self.token_path).read_text().strip()
            except OSError as exc:
                raise KfpApiError(
                    f"cannot read the KFP service-account token at {self.token_path}: {exc}; "
                    "mount the projected token (audience pipelines.kubeflow.org) or set the "
                    "connection's password"
                ) from exc
        if token:
            headers["Authorization"] = f"Bearer {token}"
        return headers

    def run_url(self, run_id: str) -> str:
        return f"{(self.ui_url or self.base_url).rstrip('/')}/#/runs/details/{run_id}"


# --- request builders (shared by the sync hook and the async trigger) -------------------
@dataclass(frozen=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    json: dict[str, Any] | None = None


def _namespaced(config: RestConfig, params: dict[str, Any]) -> dict[str, Any]:
    if config.namespace:
        params["namespace"] = config.namespace
    return params


def find_experiment_call(config: RestConfig) -> Call:
    # The filter exactly as kfp.Client.get_experiment writes it (protojson: enum number,
    # camelCase field), known to work against every KFP v2 API server.
    flt = {"predicates": [{"operation": 1, "key": "display_name",
                           "stringValue": config.experiment}]}
    return Call("GET", f"{API}/experiments",
                params=_namespaced(config, {"filter": json.dumps(flt)}))


def create_experiment_call(config: RestConfig) -> Call:
    body: dict[str, Any] = {"display_name": config.experiment,
                            "description": "driftloop retrain runs (submitted by Airflow)"}
    if config.namespace:
        body["namespace"] = config.namespace
    return Call("POST", f"{API}/experiments", json=body)


def load_pipeline_spec(package: str | Path) -> dict[str, Any]:
    """The compiled YAML as the run's ``pipeline_spec`` (platform spec kept, as kfp.Client)."""
    import yaml

    path = Path(package)
    if not path.is_file():
        raise KfpApiError(
            f"compiled pipeline {path} not found; run `python -m kfp_pipelines compile` or set "
            "the connection's pipeline_id/pipeline_version_id"
        )
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    if not docs or "root" not in docs[0]:
        raise KfpApiError(f"{path} is not a compiled KFP pipeline (no `root` in its first "
                          "document)")
    platform: dict[str, Any] = {}
    for doc in docs[1:]:
        platform.update(doc)
    return {"pipeline_spec": docs[0], "platform_spec": platform} if platform else docs[0]


def create_run_call(config: RestConfig, experiment_id: str, display_name: str,
                    parameters: dict[str, Any]) -> Call:
    body: dict[str, Any] = {"display_name": display_name, "experiment_id": experiment_id}
    if config.pipeline_id and config.pipeline_version_id:
        body["pipeline_version_reference"] = {"pipeline_id": config.pipeline_id,
                                              "pipeline_version_id": config.pipeline_version_id}
    elif config.pipeline_package:
        body["pipeline_spec"] = load_pipeline_spec(config.pipeline_package)
    else:
        raise KfpApiError("the KFP connection names no pipeline: set pipeline_package (the "
                          "compiled YAML) or pipeline_id and pipeline_version_id")
    runtime: dict[str, Any] = {"parameters": parameters}
    if config.pipeline_root:
        runtime["pipeline_root"] = config.pipeline_root
    body["runtime_config"] = runtime
    if config.service_account:
        body["service_account"] = config.service_account
    return Call("POST", f"{API}/runs", json=body)


def get_run_call(run_id: str) -> Call:
    return Call("GET", f"{API}/runs/{run_id}")


def list_runs_call(config: RestConfig, experiment_id: str, page_size: int) -> Call:
    return Call("GET", f"{API}/runs",
                params=_namespaced(config, {"experiment_id": experiment_id,
                                            "page_size": page_size,
                                            "sort_by": "created_at desc"}))


def terminate_run_call(run_id: str) -> Call:
    return Call("POST", f"{API}/runs/{run_id}:terminate")


# --- response parsing -------------------------------------------------------------------
def _time(value: str | None) -> datetime | None:
    if not value or value.startswith("1970-01-01"):  # KFP's zero timestamp: not set yet
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def parse_run(config: RestConfig, data: dict[str, Any]) -> KfpRun:
    """A ``V2beta1Run`` JSON object as a KfpRun."""
    run_id = data.get("run_id") or ""
    error = data.get("error") or {}
    return KfpRun(
        run_id=run_id,
        state=data.get("state") or UNSPECIFIED,
        display_name=data.get("display_name"),
        created_at=_time(data.get("created_at")),
        finished_at=_time(data.get("finished_at")),
        error=error.get("message") or None,
        url=config.run_url(run_id) if run_id else None,
        backend="rest",
        details={"experiment_id": data.get("experiment_id")},
    )


def _explain(config: RestConfig, call: Call, response: httpx.Response) -> httpx.Response:
    if response.is_success:
        return response
    try:
        body = response.json()
        detail = body.get("message") or body.get("error") or response.text
    except ValueError:
        detail = response.text
    hint = ""
    if response.status_code in (401, 403):
        hint = (" (multi-user KFP: the token needs access to namespace "
                f"{config.namespace or '<unset>'})")
    raise KfpApiError(f"KFP API {call.method} {config.base_url}{call.path} answered "
                      f"{response.status_code}: {str(detail)[:500]}{hint}")


def _unreachable(config: RestConfig, call: Call, exc: httpx.HTTPError) -> KfpApiError:
    return KfpApiError(f"cannot reach the KFP API at {config.base_url} ({call.method} "
                       f"{call.path}): {exc!r}")


class KfpRestBackend:
    """Synchronous REST backend (tasks). ``transport`` lets tests capture the requests."""

    name = "rest"

    def __init__(self, config: RestConfig, transport: httpx.BaseTransport | None = None) -> None:
        self.config = config
        self._transport = transport

    def _send(self, call: Call) -> dict[str, Any]:
        try:
            with httpx.Client(base_url=self.config.base_url, timeout=self.config.timeout,
                              verify=self.config.verify, transport=self._transport) as client:
                response = client.request(call.method, call.path, params=call.params,
                                          json=call.json, headers=self.config.headers())
        except httpx.HTTPError as exc:
            raise _unreachable(self.config, call, exc) from exc
        _explain(self.config, call, response)
        return response.json() if response.content else {}

    def experiment_id(self) -> str:
        if self.config.experiment_id:
            return self.config.experiment_id
        found = self._send(find_experiment_call(self.config)).get("experiments") or []
        for experiment in found:
            if experiment.get("display_name") == self.config.experiment:
                return str(experiment["experiment_id"])
        created = self._send(create_experiment_call(self.config))
        return str(created["experiment_id"])

    def submit(self, display_name: str, parameters: dict[str, Any]) -> KfpRun:
        call = create_run_call(self.config, self.experiment_id(), display_name, parameters)
        return parse_run(self.config, self._send(call))

    def get(self, run_id: str) -> KfpRun:
        return parse_run(self.config, self._send(get_run_call(run_id)))

    def recent(self, limit: int = 20) -> list[KfpRun]:
        data = self._send(list_runs_call(self.config, self.experiment_id(), limit))
        return [parse_run(self.config, r) for r in data.get("runs") or []]

    def terminate(self, run_id: str) -> None:
        self._send(terminate_run_call(run_id))

    @contextmanager
    def submission_lock(self):
        """Cluster: the one-slot Airflow pool around the submit task serializes submissions."""
        yield

    def trigger_kwargs(self) -> dict[str, Any]:
        return {}


class AsyncKfpRestPoller:
    """What the triggerer needs: read a run's state and terminate it, without blocking."""

    def __init__(self, config: RestConfig, transport: httpx.AsyncBaseTransport | None = None,
                 ) -> None:
        self.config = config
        self._transport = transport

    async def _send(self, call: Call) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(base_url=self.config.base_url,
                                         timeout=self.config.timeout,
                                         verify=self.config.verify,
                                         transport=self._transport) as client:
                response = await client.request(call.method, call.path, params=call.params,
                                                json=call.json, headers=self.config.headers())
        except httpx.HTTPError as exc:
            raise _unreachable(self.config, call, exc) from exc
        _explain(self.config, call, response)
        return response.json() if response.content else {}

    async def get(self, run_id: str) -> KfpRun:
        return parse_run(self.config, await self._send(get_run_call(run_id)))

    async def terminate(self, run_id: str) -> None:
        await self._send(terminate_run_call(run_id))
