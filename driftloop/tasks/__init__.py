"""The task seam: what differs between classification and regression, behind one registry.

``TASKS`` maps a spec's ``task`` to its :class:`~driftloop.tasks.base.Task`; a new task (for
example ranking) registers here and nothing else in driftloop changes. ``GATE_METRICS``
is the one list of gate metric names a spec is checked against.
"""

from __future__ import annotations

from driftloop.tasks.base import GateMetric, Task, estimator_kind
from driftloop.tasks.classification import Classification
from driftloop.tasks.regression import Regression

TASKS: dict[str, Task] = {task.name: task for task in (Classification(), Regression())}
TASK_NAMES: tuple[str, ...] = tuple(TASKS)
#: Every gate metric of every task, by name (names are unique across tasks).
GATE_METRICS: dict[str, GateMetric] = {
    name: metric for task in TASKS.values() for name, metric in task.metrics.items()}
#: The task each gate metric belongs to.
METRIC_TASK: dict[str, str] = {
    name: task.name for task in TASKS.values() for name in task.metrics}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(TASK_NAMES)})") from None


def infer_task(estimator_cls: type) -> str | None:
    """The task an estimator class is made for, or None when it says neither."""
    for task in TASKS.values():
        if task.fits(estimator_cls):
            return task.name
    return None


__all__ = ["GATE_METRICS", "METRIC_TASK", "TASKS", "TASK_NAMES", "GateMetric", "Task",
           "estimator_kind", "get_task", "infer_task"]
