"""The environment of a local Airflow: ``make up``, the tests and the demo build it here.

Airflow reads its configuration when it is first imported, so this module imports no
Airflow: put :func:`airflow_environ` into ``os.environ`` (or a child's env), then import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from driftloop.settings import PROJECT_ROOT

DAGS_FOLDER = PROJECT_ROOT / "dags"
PLUGINS_FOLDER = PROJECT_ROOT / "plugins"
ADMIN_USER = "admin"


def airflow_environ(home: Path, *, sql_alchemy_conn: str | None = None, api_port: int = 8080,
                    admin_user: str = ADMIN_USER) -> dict[str, str]:
    """Airflow settings for driftloop's local shape: our DAGs and plugins, no examples,
    SQLite in ``home`` unless a database URL is given, SimpleAuthManager with one admin."""
    home = Path(home).resolve()
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(PLUGINS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": sql_alchemy_conn
        or f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # New DAGs run on their schedule as soon as they are parsed (catchup stays off).
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
    }


def connections_environ(*, server_url: str, serving_token: str | None = None,
                        kfp: dict[str, Any]) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` for the two connections, as Airflow's JSON form."""
    from urllib.parse import urlsplit

    parts = urlsplit(server_url)
    serving: dict[str, Any] = {"conn_type": "http", "host": parts.hostname,
                               "port": parts.port, "schema": parts.scheme or "http"}
    if serving_token:
        serving["password"] = serving_token
    return {
        "AIRFLOW_CONN_DRIFTLOOP_SERVING": json.dumps(serving),
        "AIRFLOW_CONN_DRIFTLOOP_KFP": json.dumps(kfp),
    }


def local_kfp_connection(*, state_dir: Path, python: str | None = None,
                         env: dict[str, str] | None = None,
                         pipeline_root: Path | None = None) -> dict[str, Any]:
    """The ``driftloop_kfp`` connection of the local shape: the KFP local runner."""
    extra: dict[str, Any] = {"backend": "local", "state_dir": str(state_dir),
                             "workdir": str(PROJECT_ROOT)}
    if python:
        extra["python"] = python
    if env:
        extra["env"] = env
    if pipeline_root:
        extra["pipeline_root"] = str(pipeline_root)
    return {"conn_type": "generic", "extra": extra}
