"""ShadowScorer: the shadow model's answers reach the log off the request path; when it falls
behind or fails, rows are skipped and counted, never queued without bound, and the thread
goes on."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from driftloop.predlog import PredictionLog
from driftloop.tasks import get_task
from serving.shadow import ShadowScorer

LABELS = np.array(["a", "b"], dtype=object)


@dataclass(frozen=True)
class Model:
    """A stand-in with the ServedModel surface the scorer uses: it answers class ``pick``."""

    version: str
    pick: int
    name: str = "m"
    broken: bool = False
    label_array = LABELS
    task = get_task("classification")

    def outputs(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        if self.broken:
            raise RuntimeError("boom")
        out = np.zeros((len(numeric), 2))
        out[:, self.pick] = 1.0
        return out


def rows(n: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    return ([f"r{i}-{n}-{np.random.randint(1 << 30)}" for i in range(n)], np.ones((n, 2)),
            np.empty((n, 0), dtype=object))


def written(log: PredictionLog) -> dict[str, int]:
    return {v: c["rows"] for v, c in log.shadow_counts("m").items()}


def test_answers_of_each_model_are_written_with_its_version(tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    scored: list[tuple[str, int]] = []
    scorer = ShadowScorer(log, on_scored=lambda v, n: scored.append((v, n)))
    scorer.submit(*rows(3))  # no shadow model: nothing queued
    assert scorer.pending_rows == 0
    scorer.start()
    scorer.set_model(Model("2", 1), "challenger")
    scorer.submit(*rows(3))
    scorer.set_model(Model("3", 0), "probation")  # queued rows keep the model they had
    scorer.submit(*rows(2))
    assert scorer.flush()
    assert written(log) == {"2": 3, "3": 2}
    assert sorted(scored) == [("2", 3), ("3", 2)] and scorer.scored_rows == 5
    scorer.set_model(None, "challenger")
    assert (scorer.model, scorer.role) == (None, None)
    assert scorer.stop() == 0


def test_a_full_queue_skips_and_counts_and_a_failing_model_does_not_stop_it(
        tmp_path: Path) -> None:
    log = PredictionLog(f"sqlite:///{tmp_path / 'log.db'}")
    skipped: list[int] = []
    scorer = ShadowScorer(log, queue_max_rows=5, on_skipped=skipped.append)
    scorer.set_model(Model("2", 1), "challenger")
    scorer.submit(*rows(4))
    scorer.submit(*rows(4))  # over 5 waiting: skipped, not queued
    assert (scorer.pending_rows, scorer.skipped_rows, skipped) == (4, 4, [4])
    scorer.start()
    assert scorer.flush()
    scorer.set_model(Model("9", 0, broken=True), "challenger")
    scorer.submit(*rows(2))
    assert scorer.flush()
    assert scorer.failed_batches == 1 and scorer.skipped_rows == 6 and skipped == [4, 2]
    scorer.set_model(Model("2", 1), "challenger")
    scorer.submit(*rows(1))  # the thread is still scoring
    assert scorer.flush() and written(log) == {"2": 5}
    assert scorer.stop() == 0
