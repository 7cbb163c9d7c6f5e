"""A retrain run's identity: what it works on (:class:`Context`: settings, spec, model name)
and why (:class:`Lineage`: trigger, window, Airflow and KFP run ids, and the run key derived
from them), and the run record that carries both between the pipeline's steps.

Kept apart from the steps (:mod:`driftloop.retrain`) and from promotion
(:mod:`driftloop.promotion`) because all of them, and the CLI, need it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from driftloop import lineage
from driftloop.deploy import DeployError
from driftloop.errors import DataError, DriftloopError
from driftloop.settings import PROJECT_ROOT, Settings
from driftloop.spec import ModelSpec, load_spec

RETRAIN_TRIGGERS = ("drift", "schedule", "manual")
TAG_KFP_RUN_NAME = "kfp_run_name"


@dataclass(frozen=True)
class Context:
    """Settings, spec and registered model name a step works on."""

    settings: Settings
    spec: ModelSpec
    name: str


def resolve_spec_path(spec: str) -> Path:
    """A spec path as given, else relative to the project root (images run elsewhere)."""
    path = Path(spec).expanduser()
    if not path.is_absolute() and not path.exists() and (PROJECT_ROOT / path).exists():
        return PROJECT_ROOT / path
    return path


def context(model_name: str = "", spec: str = "") -> Context:
    """``spec`` (a YAML path) or DRIFTLOOP_SPEC_PATH; ``model_name`` or the usual default."""
    overrides: dict[str, Any] = {"spec_path": resolve_spec_path(spec)} if spec else {}
    settings = Settings(**overrides)
    loaded = load_spec(settings.spec_path)
    return Context(settings, loaded, model_name or settings.model_name or loaded.name)


def _parse_instant(value: str, what: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise DataError(f"{what} {value!r} is not an ISO-8601 date-time "
                        "(e.g. 2026-01-31T13:00:00Z)") from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def parse_window(start: str, end: str) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` in UTC; both empty means "no production rows" (source data only)."""
    if not start and not end:
        return None, None
    if not start or not end:
        raise DataError("give both window_start and window_end, or neither "
                        f"(got start={start!r}, end={end!r})")
    begin, finish = _parse_instant(start, "window_start"), _parse_instant(end, "window_end")
    if begin >= finish:
        raise DataError(f"window_start {begin.isoformat()} is not before window_end "
                        f"{finish.isoformat()}")
    return begin, finish


@dataclass(frozen=True)
class Lineage:
    """Why and from where a retrain runs; tagged on its MLflow run and version."""

    trigger: str
    window_start: str = ""
    window_end: str = ""
    airflow_run_id: str = ""
    kfp_run_id: str = ""
    kfp_run_name: str = ""

    def __post_init__(self) -> None:
        if self.trigger not in RETRAIN_TRIGGERS:
            raise DriftloopError(f"trigger must be one of {', '.join(RETRAIN_TRIGGERS)}, "
                                 f"got {self.trigger!r}")
        start, end = parse_window(self.window_start, self.window_end)
        # Normalised, so '...Z' and '...+00:00' name the same window (and run key).
        object.__setattr__(self, "window_start", start.isoformat() if start else "")
        object.__setattr__(self, "window_end", end.isoformat() if end else "")

    @property
    def window(self) -> tuple[datetime | None, datetime | None]:
        return parse_window(self.window_start, self.window_end)

    def tags(self) -> dict[str, str]:
        return {
            lineage.TAG_TRIGGER: self.trigger,
            lineage.TAG_WINDOW_START: self.window_start,
            lineage.TAG_WINDOW_END: self.window_end,
            lineage.TAG_AIRFLOW_RUN_ID: self.airflow_run_id,
            lineage.TAG_KFP_RUN_ID: self.kfp_run_id,
            TAG_KFP_RUN_NAME: self.kfp_run_name,
        }

    def run_key(self, ctx: Context) -> str:
        """Identity of a retrain request: same parameters, same key (KFP ids excluded)."""
        payload = json.dumps({
            "model": ctx.name, "spec": ctx.spec.content_hash(), "trigger": self.trigger,
            "window": [self.window_start, self.window_end], "airflow": self.airflow_run_id,
        }, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def check_deploy_target(target: str) -> None:
    from driftloop.deploy import DEPLOY_TARGETS

    if target not in DEPLOY_TARGETS:
        raise DeployError(f"unknown deploy target {target!r} (choose one of: "
                          f"{', '.join(DEPLOY_TARGETS)})")



def run_record(model_name: str, spec: str, lin: Lineage) -> str:
    """JSON carrying a run's identity from load_data to the later steps (one parameter
    instead of eight on every component)."""
    return json.dumps({"model_name": model_name, "spec": spec, **asdict(lin)}, sort_keys=True)


def from_run_record(record: str) -> tuple[Context, Lineage]:
    raw = json.loads(record)
    ctx = context(raw.pop("model_name"), raw.pop("spec"))
    return ctx, Lineage(**raw)
