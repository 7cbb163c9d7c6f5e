"""Airflow's own resources the DAGs need (pools, connections, variables), from one file.

``resources.yaml`` beside this module is the declaration; :func:`apply` makes an Airflow
match it, and every shape calls it (see the file's header). Run it as
``python -m driftloop_airflow.resources apply`` (``check`` only reports): it exits 1 naming
what is missing or wrong, so a cluster whose scheduler runs it first never schedules DAGs
whose pool or connection is absent.

``apply --store-connections`` (``make up``) also writes each declared connection into the
metadata DB from its ``AIRFLOW_CONN_*`` value, so a person sees it (and can edit it) in
Admin → Connections; connections that live only in the environment are invisible there.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DECLARATION = Path(__file__).with_name("resources.yaml")


@dataclass(frozen=True)
class Pool:
    name: str
    slots: int
    description: str
    include_deferred: bool = False


@dataclass(frozen=True)
class Resources:
    pools: dict[str, Pool]
    #: connection id -> what it is (values come from each shape's environment)
    connections: dict[str, dict[str, Any]]
    variables: dict[str, str] = field(default_factory=dict)


class ResourcesError(RuntimeError):
    """The declaration is malformed, or an Airflow does not match it."""


def load(path: Path = DECLARATION) -> Resources:
    """The declaration, checked: every pool has whole slots >= 1 and a description."""
    data = yaml.safe_load(path.read_text()) or {}
    unknown = set(data) - {"pools", "connections", "variables"}
    if unknown:
        raise ResourcesError(f"{path}: unknown section(s) {sorted(unknown)}")
    pools = {}
    for name, spec in (data.get("pools") or {}).items():
        slots = spec.get("slots")
        if not isinstance(slots, int) or isinstance(slots, bool) or slots < 1:
            raise ResourcesError(f"{path}: pool {name!r} needs whole `slots` >= 1, got {slots!r}")
        pools[name] = Pool(name, slots, str(spec.get("description", "")).strip(),
                           bool(spec.get("include_deferred", False)))
    variables = {str(k): str(v) for k, v in (data.get("variables") or {}).items()}
    return Resources(pools, dict(data.get("connections") or {}), variables)


def apply(resources: Resources | None = None, *, check_only: bool = False,
          check_connections: bool = True) -> list[str]:
    """Create or update the declared pools and variables in the configured Airflow's
    metadata DB, and check that every declared connection resolves. Returns what it did;
    raises :class:`ResourcesError` naming every connection that does not resolve (after
    the pools are in place, so a fixed connection is all that is left to do).
    ``check_connections=False``: for a test session whose tests set connections each."""
    from airflow.models.pool import Pool as AirflowPool

    resources = resources or load()
    done: list[str] = []
    problems: list[str] = []
    for pool in resources.pools.values():
        current = AirflowPool.get_pool(pool.name)
        same = current is not None and (current.slots, bool(current.include_deferred)) == (
            pool.slots, pool.include_deferred)
        if same:
            done.append(f"pool {pool.name}: {pool.slots} slot(s), as declared")
        elif check_only:
            problems.append(f"pool {pool.name} is {'missing' if current is None else 'different'}"
                            f" (declared: {pool.slots} slot(s))")
        else:
            AirflowPool.create_or_update_pool(pool.name, slots=pool.slots,
                                              description=pool.description,
                                              include_deferred=pool.include_deferred)
            done.append(f"pool {pool.name}: {'created' if current is None else 'updated'} "
                        f"with {pool.slots} slot(s)")
    if resources.variables:
        from airflow.models.variable import Variable

        for key, value in resources.variables.items():
            if not check_only:
                Variable.set(key, value)
            done.append(f"variable {key}")
    for conn_id in resources.connections if check_connections else ():
        missing = _missing_connection(conn_id)
        if missing:
            problems.append(missing)
        else:
            done.append(f"connection {conn_id}: resolves")
    if problems:
        raise ResourcesError("; ".join(problems))
    return done


def env_var(conn_id: str) -> str:
    return f"AIRFLOW_CONN_{conn_id.upper()}"


#: The fields a stored connection takes from its environment value.
CONNECTION_FIELDS = ("conn_type", "host", "schema", "login", "password", "port", "extra")


def store_connections(resources: Resources | None = None, *,
                      environ: Mapping[str, str] = os.environ) -> list[str]:
    """Create or update each declared connection in the metadata DB from its
    ``AIRFLOW_CONN_*`` value (Airflow's JSON or URI form), with the declared description.
    Raises :class:`ResourcesError` naming every declared connection that has no value, and
    stores none then (a half-configured Airflow is worse than an unchanged one)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session
    from sqlalchemy import select

    resources = resources or load()
    missing = [env_var(c) for c in resources.connections if not environ.get(env_var(c))]
    if missing:
        raise ResourcesError(f"no value to store for {', '.join(missing)}: set it (make up "
                             "gets it from driftloop_airflow/localenv.py)")
    done = []
    with create_session() as session:
        for conn_id, declared in resources.connections.items():
            value = environ[env_var(conn_id)].strip()
            given = (Connection.from_json(value, conn_id=conn_id) if value.startswith("{")
                     else Connection(conn_id=conn_id, uri=value))
            stored = session.scalar(select(Connection).where(Connection.conn_id == conn_id))
            if stored is None:
                stored = Connection(conn_id=conn_id)
                session.add(stored)
                verb = "created"
            else:
                same = all(getattr(stored, f) == getattr(given, f) for f in CONNECTION_FIELDS)
                verb = "as declared" if same else "updated"
            for name in CONNECTION_FIELDS:
                setattr(stored, name, getattr(given, name))
            stored.description = str((declared or {}).get("description", "")).strip() or None
            done.append(f"connection {conn_id}: {verb} in the metadata DB")
    return done


def _missing_connection(conn_id: str) -> str | None:
    from airflow.models.connection import Connection

    try:
        Connection.get_connection_from_secrets(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or a malformed AIRFLOW_CONN_*
        return (f"connection {conn_id} does not resolve ({type(exc).__name__}: {exc}); set "
                f"{env_var(conn_id)} (see driftloop_airflow/localenv.py, or the "
                "Secret in k8s/airflow/connections-secret.yaml)")
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m driftloop_airflow.resources",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("apply", "check"))
    parser.add_argument("--store-connections", action="store_true",
                        help="apply: also write each declared connection into the metadata "
                        "DB from its AIRFLOW_CONN_* value (visible in Admin → Connections)")
    args = parser.parse_args(argv)
    if args.store_connections and args.action != "apply":
        parser.error("--store-connections goes with `apply`")
    try:
        lines = store_connections() if args.store_connections else []
        lines += apply(check_only=args.action == "check")
        for line in lines:
            print(f"driftloop airflow resources: {line}")
    except ResourcesError as exc:
        print(f"driftloop airflow resources: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
