"""The Airflow image, on the local stand-in base where the official apache/airflow image
cannot be pulled (scripts/images/bases.sh; tagged ``-standin``): the project's DAGs import
without errors in it, and the DAG-integrity checks pass with its own Python."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.dags.test_dag_integrity import EXPECTED, HEAVY
from tests.images.conftest import built, run

pytestmark = pytest.mark.images

HERE = Path(__file__).parent


def test_the_dags_import_without_errors_in_the_image() -> None:
    image = built("airflow")
    proc = run("run", "--rm", "--network", "none", image, "bash", "-c",
               "airflow db migrate >/dev/null && airflow dags reserialize >/dev/null 2>&1 && "
               "airflow dags list-import-errors --output json && "
               "airflow dags list --output json")
    outputs = [line for line in proc.stdout.splitlines() if line.startswith(("[", "{"))]
    assert len(outputs) == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    errors, listed = (json.loads(o) for o in outputs)
    assert errors == [] or errors == {}, errors
    assert {d["dag_id"] for d in listed} == set(EXPECTED)


def test_the_dag_integrity_checks_pass_inside_the_image() -> None:
    image = built("airflow")
    expected = {dag_id: {**e, "params": sorted(e["params"])} for dag_id, e in EXPECTED.items()}
    proc = run("run", "--rm", "--network", "none",
               "-v", f"{HERE / 'airflow_integrity.py'}:/tmp/integrity.py:ro", image,
               "python", "/tmp/integrity.py", json.dumps(expected), json.dumps(HEAVY))
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    assert found["dags"] == sorted(EXPECTED) and found["heavy_imported"] == []
    # The image carries none of the ML stack: the DAGs must not need it.
    assert found["not_installed"] == ["sklearn", "mlflow", "kfp"]
