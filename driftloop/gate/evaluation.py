"""Challenger against champion on the same holdout, fresh labeled production rows first.

The holdout is the one the challenger was scored on at training (``training.split`` of the
retrain dataset: the challenger never saw it). Within it, the rows that came from the
prediction log (labeled by feedback) are what the model faces *now*; when there are enough
of them the gate judges on those alone, otherwise on the whole holdout. Either way both
models predict the same rows, and the gate compares them row by row
(:mod:`driftloop.gate.compare`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from driftloop.data import LoadedData, conform
from driftloop.errors import DataError, DriftloopError
from driftloop.gate.decision import GateResult, GateThresholds, decide
from driftloop.spec import ModelSpec
from driftloop.training import split

#: Dataset columns the retrain pipeline adds beside the spec's features and target.
ORIGIN_COLUMN = "driftloop_origin"
TS_COLUMN = "driftloop_ts"
REQUEST_ID_COLUMN = "driftloop_request_id"
SERVED_VERSION_COLUMN = "driftloop_served_version"
#: The served prediction of a production row (beside its label, for live accuracy).
PREDICTION_COLUMN = "driftloop_prediction"
#: The challenger's prediction of each gate row (the report plots it against the truth).
CHALLENGER_COLUMN = "driftloop_challenger_prediction"
EXTRA_COLUMNS = (ORIGIN_COLUMN, TS_COLUMN, REQUEST_ID_COLUMN, SERVED_VERSION_COLUMN)
ORIGIN_SOURCE = "source"
ORIGIN_PRODUCTION = "production"


def training_frame(frame: pd.DataFrame, spec: ModelSpec) -> tuple[LoadedData, pd.Series]:
    """The complete rows of a retrain dataset, conformed to the spec, and each row's origin.

    Train and evaluate both call this on the same Parquet, so they see the same rows in the
    same order and ``training.split`` gives them the same holdout.
    """
    columns = [*spec.feature_names, spec.target]
    missing = [c for c in [*columns, ORIGIN_COLUMN] if c not in frame.columns]
    if missing:
        raise DataError(f"retrain dataset lacks columns {', '.join(map(repr, missing))}")
    complete = frame[[*spec.required_features, spec.target]].notna().all(axis=1).to_numpy()
    kept = frame.loc[complete].reset_index(drop=True)
    loaded = conform(kept, spec, origin="retrain dataset")
    origin = kept[ORIGIN_COLUMN].astype(str)
    if len(origin) != loaded.rows:  # conform dropped rows we did not expect
        raise DataError("retrain dataset: rows changed while conforming; re-run load_data")
    return LoadedData(loaded.frame, len(frame), int((~complete).sum())), origin


def holdout_positions(frame: pd.DataFrame, spec: ModelSpec) -> np.ndarray:
    """Row positions of ``training.split(frame, spec)``'s holdout.

    ``split`` returns the rows without their positions; the same call on ``arange`` (same
    size, stratification and seed) yields them, and the result is checked against
    ``split``'s own holdout so a change there cannot silently desynchronise the two.
    """
    from sklearn.model_selection import train_test_split

    stratify = spec.task_impl.stratify(frame[spec.target])
    _, positions = train_test_split(
        np.arange(len(frame)), test_size=spec.split.holdout_fraction,
        random_state=spec.split.seed, stratify=stratify,
    )
    expected = split(frame, spec).x_test
    got = frame.iloc[positions][spec.feature_names].reset_index(drop=True)
    if not got.equals(expected):
        raise DriftloopError("internal: cannot recover the training holdout's rows "
                             "(driftloop.training.split changed?)")
    return np.asarray(positions)


@dataclass
class Scored:
    """One model's figures on one set of rows."""

    metrics: dict[str, Any]
    #: The predictions, row by row: classes, or a regressor's values.
    predictions: list[Any]


def score(spec: ModelSpec, model: Any, x: pd.DataFrame, y: pd.Series, labels: list[str],
          who: str) -> Scored:
    task = spec.task_impl
    try:
        predicted = task.predict(model, x)
    except (ValueError, KeyError) as exc:
        raise DriftloopError(f"the {who} cannot score the holdout: {exc}") from None
    return Scored(task.score(y, predicted, labels), predicted.tolist())


@dataclass
class Evaluation:
    gate: GateResult
    #: The task's output names: classes, or the target (a regressor).
    labels: list[str]
    task: str
    #: ``{"challenger"|"champion": {"gate"|"holdout": metrics}}`` (champion absent if none).
    scores: dict[str, dict[str, dict[str, Any]]]
    holdout_rows: int
    fresh_holdout_rows: int
    #: The rows the gate judged on (features, target, origin), for the report.
    gate_frame: pd.DataFrame

    def flat_metrics(self) -> dict[str, float]:
        """Scalar figures for KFP's Metrics artifact and MLflow."""
        out: dict[str, float] = {
            "holdout_rows": float(self.holdout_rows),
            "fresh_holdout_rows": float(self.fresh_holdout_rows),
            "gate_rows": float(self.gate.holdout_rows),
            **self.gate.flat_metrics(),
        }
        from driftloop.tasks import get_task

        keys = get_task(self.task).metrics
        for who, sets in self.scores.items():
            for which, metrics in sets.items():
                for key in keys:
                    out[f"{who}_{which}_{key}"] = float(metrics[key])
        return out


def evaluate(
    spec: ModelSpec, frame: pd.DataFrame, challenger: Any, champion: Any | None,
    thresholds: GateThresholds, *, champion_version: str | None, min_fresh_rows: int,
) -> Evaluation:
    """Score both models on the training holdout and apply the gate."""
    loaded, origin = training_frame(frame, spec)
    data = loaded.frame
    positions = holdout_positions(data, spec)
    holdout = data.iloc[positions].reset_index(drop=True)
    holdout_origin = origin.iloc[positions].reset_index(drop=True)
    fresh = (holdout_origin == ORIGIN_PRODUCTION).to_numpy()
    use_fresh = int(fresh.sum()) >= max(1, min_fresh_rows)
    gate_rows = holdout.loc[fresh].reset_index(drop=True) if use_fresh else holdout
    sets = {"gate": gate_rows, "holdout": holdout}

    task = spec.task_impl
    labels = task.evaluation_labels([m for m in (challenger, champion) if m is not None],
                                    spec.target, data[spec.target])
    models = {"challenger": challenger} | ({"champion": champion} if champion else {})
    scores: dict[str, dict[str, dict[str, Any]]] = {}
    predicted: dict[str, list[Any]] = {}
    for who, model in models.items():
        name = f"champion v{champion_version}" if who == "champion" else who
        scored = {which: score(spec, model, rows[spec.feature_names], rows[spec.target],
                               labels, name) for which, rows in sets.items()}
        scores[who] = {which: s.metrics for which, s in scored.items()}
        predicted[who] = scored["gate"].predictions
    truth = gate_rows[spec.target].tolist()
    comparison = None if champion is None else task.compare(
        thresholds.metric, truth, predicted["champion"], predicted["challenger"], labels,
        confidence=thresholds.confidence)
    gate = decide(
        thresholds, scores["challenger"]["gate"][thresholds.metric], comparison,
        champion_version=champion_version, holdout_rows=len(gate_rows),
        holdout="fresh labeled" if use_fresh else "holdout",
    )
    gate_frame = gate_rows.assign(**{ORIGIN_COLUMN: holdout_origin[fresh].to_numpy()
                                     if use_fresh else holdout_origin.to_numpy()})
    if predicted:  # the report plots predicted against actual
        gate_frame = gate_frame.assign(**{CHALLENGER_COLUMN: predicted["challenger"]})
    return Evaluation(gate, labels, task.name, scores, len(holdout), int(fresh.sum()),
                      gate_frame)
