"""The model spec: what data, which features, which estimator, and how a challenger is gated.

A spec is YAML validated with pydantic. Nothing in driftloop assumes Iris: the server, the
drift statistics and the pipeline read feature names and kinds from here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from driftloop.errors import SpecError

if TYPE_CHECKING:
    from driftloop.tasks.base import GateMetric, Task

#: What a spec's model predicts (driftloop.tasks owns what differs between them).
TaskName = Literal["classification", "regression"]
#: What the paired gate must show about ``challenger - champion`` (driftloop.gate).
GateRequirement = Literal["non_inferiority", "superiority"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DataSpec(_Strict):
    """Where training data comes from: a built-in (``sklearn:iris``) or a CSV/Parquet path."""

    source: str = Field(description="`sklearn:<name>`, or a .csv/.parquet path (relative to "
                        "the spec file).")

    @field_validator("source")
    @classmethod
    def _known_form(cls, value: str) -> str:
        value = value.strip()
        if value.startswith("sklearn:"):
            return value
        if Path(value).suffix.lower() not in {".csv", ".parquet", ".pq"}:
            raise ValueError(
                f"data source {value!r} is neither 'sklearn:<name>' nor a .csv/.parquet path"
            )
        return value


class FeaturesSpec(_Strict):
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    nullable: list[str] = Field(
        default_factory=list,
        description="Features that may be missing (JSON null). The model imputes them (the "
        "training median, or a 'missing' category) and the drift answer tracks their missing "
        "rate. Any other feature sent as null is refused with a 422, and the refusal is "
        "counted per feature in the drift answer.")

    @model_validator(mode="after")
    def _distinct(self) -> FeaturesSpec:
        names = self.numeric + self.categorical
        if not names:
            raise ValueError("features: list at least one numeric or categorical feature")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"features listed more than once: {', '.join(dupes)}")
        unknown = [n for n in self.nullable if n not in names]
        if unknown:
            raise ValueError(f"features.nullable names unknown feature(s) "
                             f"{', '.join(unknown)} (features: {', '.join(names)})")
        if len(set(self.nullable)) != len(self.nullable):
            raise ValueError("features.nullable lists a feature more than once")
        return self


class EstimatorSpec(_Strict):
    class_path: str = Field(alias="class", description="Import path of a scikit-learn "
                            "classifier or regressor.")
    params: dict[str, Any] = Field(default_factory=dict)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("class_path")
    @classmethod
    def _dotted(cls, value: str) -> str:
        if "." not in value:
            raise ValueError(f"estimator class {value!r} must be a dotted import path")
        return value


class SplitSpec(_Strict):
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    seed: int = 42


class GateSpec(_Strict):
    """A challenger is promoted only if its metric clears the spec's floor (``min_value``;
    a ceiling, ``max_value``, for a lower-is-better metric such as RMSE) and a paired test on
    the same rows shows it no worse than the champion (driftloop.gate)."""

    metric: str | None = Field(
        default=None,
        description="accuracy, f1_weighted, precision_weighted, recall_weighted "
        "(classification: default accuracy); rmse, mae, mape, r2 (regression: default rmse).")
    min_value: float | None = Field(
        default=None,
        description="The floor of a higher-is-better metric (classification default 0.8).")
    max_value: float | None = Field(
        default=None,
        description="The ceiling of a lower-is-better metric (rmse, mae: in the target's "
        "units; mape: a fraction).")
    max_regression: float | None = Field(
        default=None, ge=0,
        description="Non-inferiority margin, in the metric's units: how much worse than the "
        "champion the challenger may be (the interval of challenger - champion must stay "
        "within it). Default 0.02 for unitless metrics; required for rmse and mae.")
    require: GateRequirement = Field(
        default="non_inferiority",
        description="`non_inferiority` (no worse than the champion by more than "
        "max_regression) or `superiority` (better than the champion).")
    confidence: float = Field(
        default=0.95, gt=0.5, lt=1,
        description="Confidence of the interval of challenger - champion.")
    shadow: bool = Field(
        default=False,
        description="Send a challenger that passes to a shadow stage (alias `challenger`, "
        "judged again on live labeled rows) before it is promoted. DRIFTLOOP_SHADOW "
        "overrides.")


class DriftSpec(_Strict):
    """How this model's live inputs are tested for drift (thresholds are settings)."""

    tests: dict[str, str] = Field(
        default_factory=dict,
        description="Per feature, the drift test by its registered name: `anderson` "
        "(Anderson-Darling k-sample), `cvm` (Cramér-von Mises) or `ks` for numeric features, "
        "`chi2` or `jensen_shannon` for categoricals. Features not named get the default "
        "(anderson, chi2: the best on `make bench-drift`).")


class PreprocessingSpec(_Strict):
    scale_numeric: bool = False


class ModelSpec(_Strict):
    task: TaskName | None = Field(
        default=None,
        description="classification or regression; inferred from the estimator when "
        "omitted.")
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$",
                      description="Registered model name in MLflow.")
    description: str = ""
    data: DataSpec
    target: str
    features: FeaturesSpec
    preprocessing: PreprocessingSpec = PreprocessingSpec()
    estimator: EstimatorSpec
    split: SplitSpec = SplitSpec()
    gate: GateSpec = GateSpec()
    drift: DriftSpec = DriftSpec()

    #: Directory the spec was read from; relative data paths resolve against it.
    base_dir: Path = Field(default=Path("."), exclude=True)

    @model_validator(mode="before")
    @classmethod
    def _resolve_task(cls, raw: Any) -> Any:
        """Fill ``task`` (from the estimator) and the gate's defaults for that task, so the
        spec a version carries states them."""
        if not isinstance(raw, dict):
            return raw
        from driftloop.tasks.rules import resolve_task_defaults

        return resolve_task_defaults(raw)

    @model_validator(mode="after")
    def _target_not_a_feature(self) -> ModelSpec:
        if self.target in self.feature_names:
            raise ValueError(f"target {self.target!r} is also listed as a feature")
        from driftloop.drift import resolve_tests
        from driftloop.tasks.rules import check_gate

        resolve_tests(self.features.numeric, self.features.categorical, self.drift.tests)
        check_gate(self)
        return self

    @property
    def task_impl(self) -> Task:
        """This spec's :class:`~driftloop.tasks.base.Task`."""
        from driftloop.tasks import get_task

        return get_task(self.task or "classification")

    @property
    def gate_metric(self) -> GateMetric:
        """The gate metric's name, direction and units."""
        from driftloop.tasks import GATE_METRICS

        return GATE_METRICS[self.gate.metric or self.task_impl.default_metric]

    @property
    def gate_threshold(self) -> float:
        """The floor (``min_value``) or, for a lower-is-better metric, the ceiling
        (``max_value``) a challenger must clear: both checked present at load."""
        value = self.gate.min_value if self.gate_metric.higher_is_better else \
            self.gate.max_value
        assert value is not None
        return float(value)

    def clears(self, value: float) -> bool:
        """Whether a metric value clears the gate's threshold (in the metric's direction)."""
        return (value >= self.gate_threshold if self.gate_metric.higher_is_better
                else value <= self.gate_threshold)

    @property
    def feature_names(self) -> list[str]:
        """Numeric features first, then categoricals: the column order everywhere."""
        return [*self.features.numeric, *self.features.categorical]

    @property
    def required_features(self) -> list[str]:
        """The features that may not be missing (all but ``features.nullable``)."""
        return [n for n in self.feature_names if n not in self.features.nullable]

    def data_path(self) -> Path | None:
        """The resolved data file, or None for a built-in dataset."""
        if self.data.source.startswith("sklearn:"):
            return None
        path = Path(self.data.source).expanduser()
        return path if path.is_absolute() else (self.base_dir / path).resolve()

    def content_hash(self) -> str:
        """A stable hash of what the spec says (not of its file's formatting)."""
        payload = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        # A check across fields names its field(s) in the message itself.
        parts.append(f"{where}: {msg}" if where else msg)
    return f"invalid model spec {path}: " + "; ".join(parts)


def parse_spec(text: str, *, origin: Path) -> ModelSpec:
    """Parse spec YAML; ``origin`` names the file in errors and anchors relative paths."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "syntax error"
        raise SpecError(f"invalid model spec {origin}: not valid YAML ({first})") from None
    if not isinstance(raw, dict):
        raise SpecError(f"invalid model spec {origin}: expected a mapping at the top level")
    try:
        return ModelSpec.model_validate({**raw, "base_dir": origin.parent})
    except ValidationError as exc:
        raise SpecError(_format_validation_error(origin, exc)) from None


def load_spec(path: str | Path) -> ModelSpec:
    """Read and validate a spec file, raising :class:`SpecError` with a one-line message."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise SpecError(f"model spec not found: {path}")
    return parse_spec(path.read_text(), origin=path)
