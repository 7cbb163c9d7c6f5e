"""A spec's task and gate, resolved and checked when the spec loads.

Everything a task cannot do is refused here, with the field and the fix, never deep in a
pipeline step: a classifier given a regression metric, a ceiling on a higher-is-better
metric, a margin in target units left to a default, an estimator that is neither a
classifier nor a regressor.
"""

from __future__ import annotations

import importlib
import math
from typing import Any

from driftloop.tasks import GATE_METRICS, METRIC_TASK, TASK_NAMES, get_task, infer_task

#: The classification floor a spec that gives none gets (it always had one).
DEFAULT_MIN_VALUE = 0.8
#: The non-inferiority margin of a unitless metric that gives none.
DEFAULT_MAX_REGRESSION = 0.02


def _estimator_class(raw: dict[str, Any]) -> type | None:
    estimator = raw.get("estimator")
    path = estimator.get("class") if isinstance(estimator, dict) else None
    if not isinstance(path, str) or "." not in path:
        return None  # the field's own validator says what is wrong
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"estimator {path!r} cannot be imported ({exc}), so the task "
                         "cannot be inferred: fix the class or set task "
                         f"({' or '.join(TASK_NAMES)})") from None
    cls = getattr(module, attr, None)
    if cls is None:
        raise ValueError(f"estimator {path!r} cannot be imported: {module_name} has no "
                         f"{attr!r}")
    return cls


def resolve_task_defaults(raw: dict[str, Any]) -> dict[str, Any]:
    """``raw`` with ``task`` inferred (when omitted) and the gate's metric, threshold and
    margin defaults for that task filled in."""
    raw = dict(raw)
    if isinstance(raw.get("target"), list | tuple):
        raise ValueError(f"target {raw['target']!r}: multi-output targets are not supported; "
                         "name one target column (one spec, and one model, per target)")
    task = raw.get("task")
    try:
        cls = _estimator_class(raw)
    except ValueError:
        if task is None:
            raise  # the task cannot be inferred: say why
        # A stated task needs no import here: the estimator's own import error is said where
        # it is built (training), and a registered version's spec loads without it (a
        # server that lacks the estimator refuses the version when it loads the model).
        cls = None
    inferred = infer_task(cls) if cls is not None else None
    if task is None and cls is not None:
        if inferred is None:
            raise ValueError(
                f"estimator {raw['estimator']['class']!r} is neither a classifier nor a "
                "regressor by scikit-learn's tags; set task explicitly if it is one")
        raw["task"] = task = inferred
    elif inferred is not None and task in TASK_NAMES and inferred != task:
        raise ValueError(f"task {task!r} does not match estimator "
                         f"{raw['estimator']['class']!r}, a {inferred} estimator")
    if task not in TASK_NAMES:
        return raw  # the field's own validator names the choices
    gate = raw.get("gate")
    gate = dict(gate) if isinstance(gate, dict) else ({} if gate is None else gate)
    if not isinstance(gate, dict):
        return raw
    impl = get_task(task)
    metric_name = gate.setdefault("metric", impl.default_metric)
    metric = GATE_METRICS.get(metric_name) if isinstance(metric_name, str) else None
    if metric is not None and METRIC_TASK[metric.name] == task:
        if metric.higher_is_better and gate.get("min_value") is None and metric.unit_interval:
            gate["min_value"] = DEFAULT_MIN_VALUE
        if gate.get("max_regression") is None and not metric.target_units:
            gate["max_regression"] = DEFAULT_MAX_REGRESSION
    raw["gate"] = gate
    return raw


def check_gate(spec: Any) -> None:
    """Refuse a gate the spec's task cannot judge (ValueError naming the field)."""
    task = get_task(spec.task)
    gate = spec.gate
    metric = GATE_METRICS.get(gate.metric or "")
    if metric is None or metric.name not in task.metrics:
        other = METRIC_TASK.get(gate.metric or "")
        why = (f"it is a {other} metric, and this spec's model is a {task.name} model "
               f"({spec.estimator.class_path})" if other else "unknown metric")
        raise ValueError(f"gate.metric {gate.metric!r}: {why}; use one of "
                         f"{', '.join(task.metrics)}")
    threshold, wrong = (("min_value", "max_value") if metric.higher_is_better else
                        ("max_value", "min_value"))
    if getattr(gate, wrong) is not None:
        raise ValueError(
            f"gate.{wrong}: {metric.name}: {metric.direction}, so its threshold is "
            f"gate.{threshold} (a {'floor' if metric.higher_is_better else 'ceiling'})")
    value = getattr(gate, threshold)
    if value is None:
        raise ValueError(f"gate.{threshold} is required for {metric.name} ({metric.title}, "
                         f"{metric.direction}): the "
                         f"{'floor' if metric.higher_is_better else 'ceiling'} a challenger "
                         "must clear" + (", in the target's units" if metric.target_units
                                         else ""))
    if not math.isfinite(value) or (metric.unit_interval and not 0 <= value <= 1) or (
            not metric.higher_is_better and value < 0):
        bounds = "in [0, 1]" if metric.unit_interval else "a finite number >= 0"
        raise ValueError(f"gate.{threshold} must be {bounds} for {metric.name}, got {value}")
    if gate.max_regression is None:
        raise ValueError(f"gate.max_regression is required for {metric.name}: how much "
                         "worse than the champion a challenger may be, in the target's "
                         "units")
    if metric.unit_interval and gate.max_regression > 1:
        raise ValueError(f"gate.max_regression must be in [0, 1] for {metric.name}, got "
                         f"{gate.max_regression}")
