"""Scenario traffic for any spec, and a client that serves it and sends the feedback.

Three populations, each with its true labels:

- **stable**: rows resampled from the spec's training data (the champion's own world);
- **drifted**: every numeric feature multiplied by a growth factor (with ±3 % noise): the
  largest of :data:`DRIFT_FACTORS` (40 % first) whose rows the spec's expectation suite
  still calls valid, since drift is not broken data (:func:`drift_factor`) —
  for Iris, "a new greenhouse grows flowers 40 % larger" — categoricals unchanged; the true
  label stays the original row's (larger flowers are still the same species; for the
  penguins' mass, a new colony's birds measure 40 % larger but weigh what they weighed, so
  the champion overestimates every one and its live error rises);
- **broken**: stable rows whose first numeric feature arrives in the wrong unit (x10, cm
  read as mm): valid numbers, impossible values — the expectation suite must refuse them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np
import pandas as pd

from driftloop.spec import ModelSpec
from driftloop.tasks import Task

#: Growth factors of the drifted population, tried largest first.
DRIFT_FACTORS = (1.4, 1.3, 1.2, 1.1)
#: A factor is used when at least this share of its rows is in every feature's valid range.
VALID_SHARE = 0.99
DRIFT_NOISE = 0.03
BROKEN_FACTOR = 10.0


def stable_rows(frame: pd.DataFrame, n: int, seed: int) -> pd.DataFrame:
    return frame.sample(n, replace=True, random_state=seed).reset_index(drop=True)


def drifted_rows(frame: pd.DataFrame, spec: ModelSpec, n: int, seed: int,
                 factor: float = DRIFT_FACTORS[0]) -> pd.DataFrame:
    rows = stable_rows(frame, n, seed)
    rng = np.random.default_rng(seed)
    for col in spec.features.numeric:
        noise = rng.normal(1.0, DRIFT_NOISE, n)
        rows[col] = (rows[col] * factor * noise).round(3)
    return rows


def drift_factor(frame: pd.DataFrame, spec: ModelSpec, suite: dict[str, Any],
                 seed: int = 0) -> float:
    """The largest of :data:`DRIFT_FACTORS` at which :data:`VALID_SHARE` of the drifted rows
    lie within every numeric range of the suite: Iris grows 40 %; penguins, whose flippers
    would then outgrow the widened training range, grow less."""
    bounds = {e["kwargs"]["column"]: (e["kwargs"]["min_value"], e["kwargs"]["max_value"])
              for e in suite.get("expectations", [])
              if e.get("type") == "expect_column_values_to_be_between"
              and e["kwargs"].get("column") in spec.features.numeric}
    for factor in DRIFT_FACTORS:
        rows = drifted_rows(frame, spec, 1000, seed, factor)
        if all(rows[col].between(low, high).mean() >= VALID_SHARE
               for col, (low, high) in bounds.items()):
            return factor
    return DRIFT_FACTORS[-1]


def broken_rows(frame: pd.DataFrame, spec: ModelSpec, n: int, seed: int) -> pd.DataFrame:
    rows = stable_rows(frame, n, seed)
    first = spec.features.numeric[0]
    rows[first] = rows[first] * BROKEN_FACTOR
    return rows


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Served:
    """What one phase of traffic got back."""

    sent: int = 0
    #: Requests and label posts that did not get a 2xx (each one's reason in ``errors``).
    failed: int = 0
    labels_sent: int = 0
    labels_failed: int = 0
    # Plain dicts, not Counters: dataclasses.asdict() mangles Counters into tuple keys.
    #: Per answering version: (true label, prediction) as the log stores them.
    pairs_by_version: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    total_by_version: dict[str, int] = field(default_factory=dict)
    first_at: datetime | None = None
    first_seen: dict[str, datetime] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def live(self, task: Task, version: str | None = None) -> dict[str, float | None]:
        """The task's live figures (accuracy; or MAE and RMSE) of the answered requests, of
        one version or all."""
        pairs = ([p for ps in self.pairs_by_version.values() for p in ps] if version is None
                 else self.pairs_by_version.get(version, []))
        return task.live(pairs)


class TrafficClient:
    """Sends rows one per request (as live callers do) and their true labels as feedback."""

    def __init__(self, url: str, spec: ModelSpec, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=url, timeout=timeout)
        self._spec = spec
        self._task = spec.task_impl

    def close(self) -> None:
        self._http.close()

    def _record(self, row: pd.Series) -> dict[str, Any]:
        out: dict[str, Any] = {c: float(row[c]) for c in self._spec.features.numeric}
        out.update({c: str(row[c]) for c in self._spec.features.categorical})
        return out

    def serve(self, rows: pd.DataFrame, served: Served | None = None,
              stop: threading.Event | None = None, pause_s: float = 0.0) -> Served:
        served = served or Served()
        feedback: list[dict[str, Any]] = []
        for _, row in rows.iterrows():
            if stop is not None and stop.is_set():
                break
            sent_at = utcnow()
            served.first_at = served.first_at or sent_at
            served.sent += 1
            try:
                answer = self._http.post("/predict", json={"records": [self._record(row)]})
            except httpx.HTTPError as exc:
                served.failed += 1
                served.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if answer.status_code != 200:
                served.failed += 1
                served.errors.append(f"{answer.status_code}: {answer.text[:200]}")
                continue
            body = answer.json()
            version = str(body["model"]["version"])
            prediction = body["predictions"][0]
            truth = self._task.label_json(row[self._spec.target])
            served.first_seen.setdefault(version, utcnow())
            served.total_by_version[version] = served.total_by_version.get(version, 0) + 1
            served.pairs_by_version.setdefault(version, []).append(
                (self._task.label_text(truth), self._task.answer_text(prediction)))
            feedback.append({"request_id": prediction["request_id"], "label": truth})
            if len(feedback) >= 100:
                self.send_feedback(feedback, served)
                feedback = []
            if pause_s:
                time.sleep(pause_s)
        if feedback:
            self.send_feedback(feedback, served)
        return served

    def send_feedback(self, labels: list[dict[str, Any]], served: Served) -> None:
        """Post labels; a refusal counts as a failure of the phase, with its reason."""
        served.labels_sent += len(labels)
        try:
            answer = self._http.post("/feedback", json={"labels": labels})
        except httpx.HTTPError as exc:
            served.labels_failed += len(labels)
            served.errors.append(f"POST /feedback: {type(exc).__name__}: {exc}")
            return
        if answer.status_code != 200:
            served.labels_failed += len(labels)
            served.errors.append(f"POST /feedback {answer.status_code}: {answer.text[:200]}")

    def get(self, path: str, **params: Any) -> Any:
        answer = self._http.get(path, params=params or None)
        answer.raise_for_status()
        return answer.json()


class BackgroundTraffic(threading.Thread):
    """Keeps drifted traffic flowing while Airflow, KFP and the reload do their work, so the
    hot swap happens under load; counts every failed request and label.

    An exception in the thread is kept (``error``) and raised by :meth:`stop`: a background
    client that died must fail the demo, never shorten its counts silently.
    """

    def __init__(self, url: str, spec: ModelSpec, rows: pd.DataFrame, pause_s: float) -> None:
        super().__init__(name="demo-traffic", daemon=True)
        self._client = TrafficClient(url, spec)
        self._rows = rows
        self._pause = pause_s
        self.stop_event = threading.Event()
        self.served = Served()
        self.error: str | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                self._client.serve(self._rows, self.served, self.stop_event, self._pause)
        except BaseException:
            import traceback

            self.error = traceback.format_exc()
            raise
        finally:
            self._client.close()

    def wait_for_version(self, version: str, answers: int, timeout_s: float) -> bool:
        """Until ``answers`` requests were answered by ``version`` (True), the thread ends,
        or ``timeout_s`` passes (False)."""
        deadline = time.monotonic() + timeout_s
        while self.served.total_by_version.get(version, 0) < answers:
            if not self.is_alive() or time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> Served:
        self.stop_event.set()
        self.join(timeout=60)
        if self.is_alive():
            raise BackgroundFailed("the background traffic did not stop within 60 s")
        if self.error:
            raise BackgroundFailed(f"the background traffic died:\n{self.error}")
        return self.served


class BackgroundFailed(RuntimeError):
    """The background client died or hung: the demo's counts would be incomplete."""
