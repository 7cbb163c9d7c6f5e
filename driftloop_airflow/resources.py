"""Airflow's own resources the DAGs need (pools, connections, variables), from one file.

``resources.yaml`` beside this module is the declaration; :func:`apply` makes an Airflow
match it, and every shape calls it (see the file's header). Run it as
``python -m driftloop_airflow.resources apply`` (``check`` only reports): it exits 1 naming
what is missing or wrong, so a cluster whose scheduler runs it first never schedules DAGs
whose pool or connection is absent.
"""

from __future__ import annotations

import sys
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


def _missing_connection(conn_id: str) -> str | None:
    from airflow.models.connection import Connection

    try:
        Connection.get_connection_from_secrets(conn_id)
    except Exception as exc:  # AirflowNotFoundException, or a malformed AIRFLOW_CONN_*
        return (f"connection {conn_id} does not resolve ({type(exc).__name__}: {exc}); set "
                f"AIRFLOW_CONN_{conn_id.upper()} (see driftloop_airflow/localenv.py, or the "
                "Secret in k8s/airflow/connections-secret.yaml)")
    return None


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m driftloop_airflow.resources",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("apply", "check"))
    args = parser.parse_args(argv)
    try:
        for line in apply(check_only=args.action == "check"):
            print(f"driftloop airflow resources: {line}")
    except ResourcesError as exc:
        print(f"driftloop airflow resources: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
