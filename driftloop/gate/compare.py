"""Champion and challenger compared on the same rows: the gate metric for each, their
difference with its interval, and a p-value, by the paired test registered for the metric.

The registry maps each test's name to its function; :data:`METRIC_TESTS` says which test a
gate metric uses (accuracy: exact McNemar with Newcombe's interval; any other metric: the
paired bootstrap). A classifier's metrics are computed from confusion counts
(:func:`weighted_metric`), a regressor's from per-row errors (:func:`error_metric`); the
task (:mod:`driftloop.tasks`) says which of :func:`compare_classes` and
:func:`compare_values` applies. ``difference`` is always ``challenger - champion`` in the
metric's own units; the gate reads it in the metric's direction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from driftloop.gate.paired import (
    ROUNDS,
    BatchMetric,
    discordant,
    mcnemar_exact,
    newcombe_interval,
    paired_bootstrap_metric,
)


@dataclass(frozen=True)
class Comparison:
    """``challenger - champion`` on one metric over the same rows, and how it was tested."""

    metric: str
    test: str
    rows: int
    champion: float
    challenger: float
    difference: float
    low: float
    high: float
    confidence: float
    p_value: float
    #: Rows only the champion / only the challenger got right (McNemar's discordant rows).
    champion_only: int | None = None
    challenger_only: int | None = None

    def evidence(self) -> str:
        """The test and its p-value, in words."""
        p = "p<0.0001" if self.p_value < 1e-4 else f"p={self.p_value:.2g}"
        if self.test == "mcnemar":
            rows = "row" if self.challenger_only == 1 else "rows"
            return (f"exact McNemar {p} ({self.challenger_only} {rows} only the challenger "
                    f"got right, {self.champion_only} only the champion)")
        if self.p_value <= 1 / ROUNDS:  # no resample crossed 0: the p-value's resolution
            p = f"p<{1 / ROUNDS:g}"
        return f"paired bootstrap {p} ({ROUNDS} resamples of the rows)"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _codes(y: Sequence[str], labels: list[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    try:
        return np.fromiter((index[str(v)] for v in y), dtype=np.int64, count=len(y))
    except KeyError as exc:
        raise ValueError(f"class {exc.args[0]!r} is not among the labels {labels}") from None


def weighted_metric(name: str, truth: np.ndarray, predicted: np.ndarray,
                    classes: int) -> BatchMetric:
    """``name`` (accuracy or a support-weighted F1/precision/recall, as scikit-learn computes
    them with ``zero_division=0``) on many resamples at once, from their confusion counts."""

    def batch(idx: np.ndarray) -> np.ndarray:
        rounds = idx.shape[0]
        cell = (np.arange(rounds)[:, None] * classes + truth[idx]) * classes + predicted[idx]
        conf = np.bincount(cell.ravel(), minlength=rounds * classes * classes)
        conf = conf.reshape(rounds, classes, classes).astype(np.float64)
        tp = np.einsum("rkk->rk", conf)
        support, called = conf.sum(axis=2), conf.sum(axis=1)
        if name == "accuracy":
            return tp.sum(axis=1) / idx.shape[1]
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class = {
                "precision_weighted": tp / called,
                "recall_weighted": tp / support,
                "f1_weighted": 2 * tp / (support + called),
            }[name]
        per_class = np.nan_to_num(per_class, nan=0.0, posinf=0.0)
        return (per_class * support).sum(axis=1) / idx.shape[1]

    return batch


def mcnemar(metric: str, truth: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
            classes: int, confidence: float) -> Comparison:
    """Accuracy: exact McNemar on the discordant rows, Newcombe's interval of the difference."""
    right_a, right_b = champion == truth, challenger == truth
    b, c = discordant(right_a, right_b)
    both = int((right_a & right_b).sum())
    n = len(truth)
    low, high = newcombe_interval(both, b, c, n - both - b - c, confidence=confidence)
    return Comparison(metric, "mcnemar", n, float(right_a.mean()), float(right_b.mean()),
                      (c - b) / n, low, high, confidence, mcnemar_exact(b, c), b, c)


def bootstrap(metric: str, truth: np.ndarray, champion: np.ndarray, challenger: np.ndarray,
              classes: int, confidence: float) -> Comparison:
    """Any metric: the paired bootstrap's percentile interval and p-value."""
    return _bootstrapped(metric, weighted_metric(metric, truth, champion, classes),
                         weighted_metric(metric, truth, challenger, classes), len(truth),
                         confidence)


def _bootstrapped(metric: str, of_champion: BatchMetric, of_challenger: BatchMetric,
                  rows: int, confidence: float) -> Comparison:
    whole = np.arange(rows)[None, :]
    interval, p = paired_bootstrap_metric(of_champion, of_challenger, rows,
                                          confidence=confidence)
    return Comparison(metric, "bootstrap", rows, float(of_champion(whole)[0]),
                      float(of_challenger(whole)[0]), interval.difference, interval.low,
                      interval.high, confidence, p)


def _same_rows(truth: Sequence[Any], champion: Sequence[Any],
               challenger: Sequence[Any]) -> None:
    if not len(truth) == len(champion) == len(challenger):
        raise ValueError(f"the two models were scored on different rows ({len(champion)} "
                         f"and {len(challenger)} predictions for {len(truth)} rows)")
    if len(truth) == 0:
        raise ValueError("no rows to compare")


PairedTest = Callable[[str, np.ndarray, np.ndarray, np.ndarray, int, float], Comparison]

#: The paired tests by name.
PAIRED_TESTS: dict[str, PairedTest] = {"mcnemar": mcnemar, "bootstrap": bootstrap}
#: The test each gate metric uses; metrics not named use the bootstrap.
METRIC_TESTS: dict[str, str] = {"accuracy": "mcnemar"}


def compare_classes(metric: str, truth: Sequence[str], champion: Sequence[str],
                    challenger: Sequence[str], labels: list[str], *,
                    confidence: float = 0.95) -> Comparison:
    """Compare two classifiers' predictions of the same rows on ``metric``."""
    _same_rows(truth, champion, challenger)
    test = PAIRED_TESTS[METRIC_TESTS.get(metric, "bootstrap")]
    return test(metric, _codes(truth, labels), _codes(champion, labels),
                _codes(challenger, labels), len(labels), confidence)


def error_metric(name: str, truth: np.ndarray, predicted: np.ndarray) -> BatchMetric:
    """A regression metric (rmse, mae, mape, r2) on many resamples at once."""
    err = predicted - truth
    if name == "mape":
        nonzero = np.abs(truth) > 1e-12
        rel = np.where(nonzero, np.abs(err) / np.where(nonzero, np.abs(truth), 1.0), 0.0)

    def batch(idx: np.ndarray) -> np.ndarray:
        e = err[idx]
        if name == "rmse":
            return np.sqrt(np.mean(e * e, axis=1))
        if name == "mae":
            return np.mean(np.abs(e), axis=1)
        if name == "mape":
            counted = nonzero[idx].sum(axis=1)
            return rel[idx].sum(axis=1) / np.maximum(counted, 1)
        if name == "r2":
            t = truth[idx]
            total = ((t - t.mean(axis=1, keepdims=True)) ** 2).sum(axis=1)
            with np.errstate(divide="ignore", invalid="ignore"):
                return np.where(total > 0, 1.0 - (e * e).sum(axis=1) / total, 0.0)
        raise ValueError(f"unknown regression metric {name!r}")

    return batch


def compare_values(metric: str, truth: np.ndarray, champion: np.ndarray,
                   challenger: np.ndarray, *, confidence: float = 0.95) -> Comparison:
    """Compare two regressors' values of the same rows on ``metric``: the paired bootstrap
    of the metric's difference (rows resampled together)."""
    _same_rows(truth, champion, challenger)
    for who, values in (("truth", truth), ("champion", champion), ("challenger", challenger)):
        if not np.isfinite(values).all():
            raise ValueError(f"the {who}'s values are not all finite numbers")
    return _bootstrapped(metric, error_metric(metric, truth, champion),
                         error_metric(metric, truth, challenger), len(truth), confidence)
