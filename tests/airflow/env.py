"""One Airflow home per test session, configured before anything imports Airflow.

Airflow reads its configuration at first import, so both ``tests/airflow`` and ``tests/dags``
call :func:`configure` from their conftest (at collection, before their test modules load).
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

_HOME: Path | None = None


def configure() -> Path:
    """Point Airflow at a fresh home under the temp dir (idempotent); return it."""
    global _HOME
    if _HOME is not None:
        return _HOME
    if "airflow" in sys.modules and "AIRFLOW_HOME" not in os.environ:
        raise RuntimeError("Airflow was imported before the test Airflow home was set")
    from driftloop_airflow.localenv import airflow_environ

    _HOME = Path(tempfile.mkdtemp(prefix="driftloop-airflow-"))
    os.environ.update(airflow_environ(_HOME))
    # Task logs and the dag.test() supervisor stay in-process and quiet.
    os.environ.setdefault("AIRFLOW__LOGGING__LOGGING_LEVEL", "INFO")
    return _HOME
