"""The prediction log: every served row, durably; labels; the windows drift is computed on.

One concern per module:

- :mod:`.schema`: the tables (``predictions``, ``labels``, ``replicas``, ``reports``) and
  the migrations, each applied once;
- :mod:`.partitions`: PostgreSQL's day partitions, created ahead and on demand;
- :mod:`.retention`: old rows leave in bounded batches (or whole days on PostgreSQL);
- :mod:`.archive`: rows past retention written to Parquet first;
- :mod:`.codec`: how rows and times are encoded, and decoded into :class:`Window` s;
- :mod:`.store`: :class:`PredictionLog`, reads and writes over one SQLAlchemy URL;
- :mod:`.labels`: ground truth stored on its own and joined when read (never refused for an
  id whose row is not written yet);
- :mod:`.replicas`: the servers sharing the log (heartbeats);
- :mod:`.reports`: reports people open after the task that wrote them is gone;
- :mod:`.refusals`: rows ``/predict`` refused, counted per feature and reason;
- :mod:`.shadow`: what a model scoring beside the served one answered, paired with the
  served answers and the labels;
- :mod:`.writer`: :class:`LogWriter`, the batching background writer and its durability
  promise.
"""

from __future__ import annotations

from driftloop.predlog.codec import (
    Window,
    from_micros,
    masked_url,
    now_micros,
    rows_for,
    sqlalchemy_url,
    to_micros,
)
from driftloop.predlog.labels import FeedbackResult
from driftloop.predlog.refusals import REFUSAL_REASONS, RefusalReason
from driftloop.predlog.replicas import Heartbeat, Replica, new_instance_id
from driftloop.predlog.reports import BadReport, Report
from driftloop.predlog.retention import PurgeResult
from driftloop.predlog.schema import INSERT_COLUMNS
from driftloop.predlog.shadow import ShadowPairs
from driftloop.predlog.store import PredictionLog
from driftloop.predlog.writer import LogWriter

__all__ = [
    "INSERT_COLUMNS",
    "REFUSAL_REASONS",
    "BadReport",
    "FeedbackResult",
    "Heartbeat",
    "LogWriter",
    "PredictionLog",
    "PurgeResult",
    "RefusalReason",
    "Replica",
    "Report",
    "ShadowPairs",
    "Window",
    "from_micros",
    "masked_url",
    "new_instance_id",
    "now_micros",
    "rows_for",
    "sqlalchemy_url",
    "to_micros",
]
