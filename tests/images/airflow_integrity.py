"""The DAG-integrity checks, run with the Airflow image's own Python on its baked DAGs
(mounted into the container by test_airflow_image.py; stdlib and Airflow only).

Argument: JSON ``{dag_id: {"cron": ..., "file": ..., "params": [...]}}`` (the host test's
EXPECTED) and the ML libraries no DAG may import. Prints one JSON line: what was checked, or
raises with the first problem.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main() -> None:
    expected, heavy = json.loads(sys.argv[1]), json.loads(sys.argv[2])
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder="/opt/airflow/dags")
    assert bag.import_errors == {}, bag.import_errors
    assert set(bag.dags) == set(expected), sorted(bag.dags)
    for dag_id, want in expected.items():
        dag = bag.dags[dag_id]
        assert Path(dag.fileloc).name == want["file"], dag.fileloc
        assert {"driftloop", "mlops"} <= set(dag.tags), dag_id
        assert dag.catchup is False and dag.max_active_runs == 1, dag_id
        assert set(want["params"]) <= set(dag.params), (dag_id, sorted(dag.params))
        cron = getattr(dag.timetable, "expression", None) if want["cron"] else None
        assert cron == want["cron"], (dag_id, cron)
        for task in dag.tasks:
            assert task.owner == "driftloop", (dag_id, task.task_id)
    loaded = [m for m in heavy if m in sys.modules]
    assert loaded == [], f"parsing the DAGs imported {loaded}"
    missing = []
    for module in ("sklearn", "mlflow", "kfp"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    print(json.dumps({"dags": sorted(bag.dags), "heavy_imported": loaded,
                      "not_installed": missing}))


if __name__ == "__main__":
    main()
