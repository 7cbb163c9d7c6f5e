"""Shadow predictions in the log (SQLite and, when available, PostgreSQL): written once per
request and version, paired with the served answers and the labels by request id, counted,
and purged with the rest."""

from __future__ import annotations

from datetime import timedelta

import numpy as np

from driftloop.predlog import PredictionLog, rows_for, to_micros
from tests.unit.test_predlog import T0, _log_rows

MODEL = "iris-classifier"


def _shadow(log: PredictionLog, ids: list[str], answers: list[str], version: str = "2",
            start_s: int = 0) -> int:
    return log.write_shadow(
        (to_micros(T0 + timedelta(seconds=start_s + i)), rid, MODEL, version, answer)
        for i, (rid, answer) in enumerate(zip(ids, answers, strict=True)))


def test_shadow_answers_pair_with_served_answers_and_labels(log_url: str) -> None:
    log = PredictionLog(log_url)
    ids, _ = _log_rows(log, 6)  # served by v1
    assert _shadow(log, ids[:5], ["setosa", "virginica", "setosa", "versicolor", "setosa"]) == 5
    log.add_feedback([(ids[0], "setosa"), (ids[1], "setosa"), (ids[3], "versicolor"),
                      (ids[5], "virginica")])  # ids[5]: labeled, but no shadow answer
    pairs = log.shadow_pairs(MODEL, "2")
    assert pairs.rows == 3 and pairs.shadow_version == "2"
    assert pairs.truth == ["setosa", "setosa", "versicolor"]  # oldest first
    assert pairs.shadow == ["setosa", "virginica", "versicolor"]
    assert pairs.served_version == ["1", "1", "1"]
    assert len(pairs.served) == 3
    # Only rows since a time, only rows served by a given champion, only this version.
    assert log.shadow_pairs(MODEL, "2", since=T0 + timedelta(seconds=2)).truth == ["versicolor"]
    assert log.shadow_pairs(MODEL, "2", served_version="7").rows == 0
    assert log.shadow_pairs(MODEL, "3").rows == 0
    assert log.shadow_pairs("other-model", "2").rows == 0
    assert log.shadow_counts(MODEL) == {"2": {"rows": 5, "labeled": 3}}


def test_a_retried_shadow_write_adds_nothing_and_versions_are_kept_apart(log_url: str) -> None:
    log = PredictionLog(log_url)
    ids, _ = _log_rows(log, 3)
    assert _shadow(log, ids, ["setosa"] * 3) == 3
    assert _shadow(log, ids, ["virginica"] * 3) == 0  # the first answer stays
    assert _shadow(log, ids[:1], ["virginica"], version="3") == 1
    log.add_feedback([(ids[0], "setosa")])
    assert log.shadow_pairs(MODEL, "2").shadow == ["setosa"]
    assert log.shadow_pairs(MODEL, "3").shadow == ["virginica"]
    assert log.write_shadow([]) == 0


def test_a_shadow_answer_pairs_once_its_served_row_lands(log_url: str) -> None:
    """Replicas flush their own rows: the shadow row may be written before the served row."""
    log = PredictionLog(log_url)
    _shadow(log, ["early"], ["setosa"])
    log.add_feedback([("early", "setosa")])
    assert log.shadow_pairs(MODEL, "2").rows == 0
    log.write_rows(rows_for(to_micros(T0), ["early"], MODEL, "1", np.ones((1, 4)), None,
                            ["versicolor"], np.array([[0.1, 0.8, 0.1]]),
                            ["setosa", "versicolor", "virginica"]))
    pairs = log.shadow_pairs(MODEL, "2")
    assert (pairs.truth, pairs.served, pairs.shadow) == (["setosa"], ["versicolor"], ["setosa"])


def test_retention_removes_old_shadow_answers(log_url: str) -> None:
    log = PredictionLog(log_url)
    ids, _ = _log_rows(log, 4)
    _shadow(log, ids, ["setosa"] * 4)
    result = log.purge(to_micros(T0 + timedelta(seconds=2)))
    assert result.shadow_deleted == 2
    assert log.shadow_counts(MODEL) == {"2": {"rows": 2, "labeled": 0}}
