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
ADMIN_USER = "admin"


def airflow_environ(home: Path, *, sql_alchemy_conn: str | None = None, api_port: int = 8080,
                    log_ports: tuple[int, int] = (8793, 8794),
                    admin_user: str = ADMIN_USER) -> dict[str, str]:
    """Airflow settings for driftloop's local shape: our DAGs and plugins, no examples,
    SQLite in ``home`` unless a database URL is given, SimpleAuthManager with one admin."""
    home = Path(home).resolve()
    database = metadata_db_environ(sql_alchemy_conn or f"sqlite:///{home / 'airflow.db'}")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        # driftloop_airflow is an installed package, not a plugin: the plugins folder stays
        # empty, so no .airflowignore is needed (and Airflow never warns about its syntax).
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(home / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        **database,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{admin_user}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        # The worker's and the triggerer's log servers: two local Airflows must not collide.
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(log_ports[0]),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(log_ports[1]),
    }


def metadata_db_environ(url: str) -> dict[str, str]:
    """Airflow's metadata DB, sync and async engines. PostgreSQL goes through psycopg 3 (the
    one driver installed): Airflow would otherwise derive ``asyncpg`` for its async engine."""
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix):]
    env = {"AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": url}
    if url.startswith("postgresql+psycopg://"):
        env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"] = url
    return env


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


def local_connections_environ(*, server_url: str, state_dir: Path, token: str | None = None,
                              python: str | None = None) -> dict[str, str]:
    """Both connections of the local shape: the server, and the KFP local runner whose
    pipeline reads ``state_dir`` and hot-reloads the server with the admin token."""
    state = Path(state_dir).resolve()
    pipeline_env = {"DRIFTLOOP_STATE_DIR": str(state), "DRIFTLOOP_SERVER_URL": server_url}
    if token:
        pipeline_env["DRIFTLOOP_ADMIN_TOKEN"] = token
    return connections_environ(server_url=server_url, serving_token=token,
                               kfp=local_kfp_connection(state_dir=state, python=python,
                                                        env=pipeline_env))


def shell_exports(argv: list[str] | None = None) -> str:
    """``export`` lines for scripts/local-up.sh: the same environment the tests use."""
    import argparse
    import shlex

    parser = argparse.ArgumentParser(prog="python -m driftloop_airflow.localenv")
    parser.add_argument("--home", type=Path, required=True, help="AIRFLOW_HOME")
    parser.add_argument("--state-dir", type=Path, required=True, help="DRIFTLOOP_STATE_DIR")
    parser.add_argument("--api-port", type=int, default=8080)
    parser.add_argument("--log-ports", type=int, nargs=2, default=(8793, 8794),
                        metavar=("WORKER", "TRIGGERER"))
    parser.add_argument("--db-url", default=None, help="metadata DB (default: SQLite)")
    parser.add_argument("--server-url", required=True, help="the driftloop server")
    parser.add_argument("--token", default=None, help="the server's admin token")
    parser.add_argument("--python", default=None, help="interpreter of the local KFP runner")
    args = parser.parse_args(argv)
    state = args.state_dir.resolve()
    env = {
        **airflow_environ(args.home, sql_alchemy_conn=args.db_url, api_port=args.api_port,
                          log_ports=tuple(args.log_ports)),
        **local_connections_environ(server_url=args.server_url, state_dir=state,
                                    token=args.token, python=args.python),
        "DRIFTLOOP_STATE_DIR": str(state),
    }
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())


if __name__ == "__main__":
    print(shell_exports())
