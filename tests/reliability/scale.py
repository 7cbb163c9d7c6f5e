"""One suite, two scales: ``make test`` runs every reliability test small, ``make
reliability`` runs the same tests at full size (``DRIFTLOOP_RELIABILITY_SCALE=full``).

Only sizes change between the two; no test is left out of ``make test``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SCALE_ENV = "DRIFTLOOP_RELIABILITY_SCALE"


@dataclass(frozen=True)
class Scale:
    name: str
    #: schemathesis examples per operation (operations without inputs yield fewer).
    fuzz_examples: int
    #: the fuzz run must reach this many cases in all.
    fuzz_min_cases: int
    #: /predict calls during the rollout, their concurrency, and the reloads among them.
    rollout_requests: int
    rollout_connections: int
    rollout_reloads: int
    #: seconds of load before a kill -9 / SIGTERM, and its concurrency.
    crash_load_s: float
    crash_connections: int
    #: rows served while the prediction log's database is away.
    outage_rows: int
    #: predictions per phase whose labels go to the other replica (calm, then stalled).
    replica_labels: int
    #: rows sent at full speed into a log that cannot keep up (push-back, nothing lost).
    pushback_rows: int


SMALL = Scale("small", fuzz_examples=15, fuzz_min_cases=100, rollout_requests=2_000,
              rollout_connections=32, rollout_reloads=3, crash_load_s=2.5,
              crash_connections=16, outage_rows=600, replica_labels=1_000,
              pushback_rows=200_000)
FULL = Scale("full", fuzz_examples=135, fuzz_min_cases=1_000, rollout_requests=10_000,
             rollout_connections=32, rollout_reloads=5, crash_load_s=6.0,
             crash_connections=32, outage_rows=3_000, replica_labels=5_000,
             pushback_rows=1_000_000)


def current() -> Scale:
    value = os.environ.get(SCALE_ENV, "small").strip().lower()
    scales = {s.name: s for s in (SMALL, FULL)}
    if value not in scales:
        raise RuntimeError(f"{SCALE_ENV}={value!r}: use 'small' (make test) or 'full' "
                           "(make reliability)")
    return scales[value]


SCALE = current()
