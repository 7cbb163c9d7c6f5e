"""Request and response bodies: the generated OpenAPI is the serving contract."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
)

from driftloop.drift import FeatureDrift
from driftloop.spec import TaskName

#: One feature value: a number for numeric features, a string for categorical ones, null
#: for a missing value (only features the spec lists in ``features.nullable``).
Value = StrictFloat | StrictStr | None


def _iso_only(value: Any) -> Any:
    """Pydantic reads a bare number as Unix time ("2026" is 1970-01-01T00:33:46); the
    contract says ISO 8601 (``format: date-time``), so a number is refused, not guessed."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, int | float) or (isinstance(text, str) and
                                         text.lstrip("+-").replace(".", "", 1).isdigit()):
        raise ValueError(f"expected an ISO 8601 date-time such as 2026-03-01T10:00:00Z, "
                         f"not the number {value!r}")
    return value


#: A date-time as the contract states it: ISO 8601 only (naive means UTC).
IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong, in one line.")


class PredictRequest(_Body):
    """Exactly one of ``features`` (one positional row), ``instances`` (positional rows) or
    ``records`` (rows by feature name). Positional rows follow ``GET /model``'s feature
    order: numeric features first, then categorical ones."""

    features: list[Value] | None = Field(
        default=None, description="One row, positional.", examples=[[5.1, 3.5, 1.4, 0.2]])
    instances: list[list[Value]] | None = Field(
        default=None, description="A batch of positional rows.",
        examples=[[[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]])
    records: list[dict[str, Value]] | None = Field(
        default=None, description="A batch of rows by feature name.",
        examples=[[{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4,
                    "petal_width": 0.2}]])


class ModelRef(BaseModel):
    name: str
    version: str


class RowPrediction(BaseModel):
    """A classifier's row has ``label`` and ``probabilities``; a regressor's, ``value``."""

    request_id: str = Field(description="Send it back with POST /feedback.")
    label: str | None = Field(default=None, description="The predicted class (classifiers).")
    probabilities: dict[str, float] | None = Field(
        default=None, description="Each class's probability (classifiers).")
    value: float | None = Field(default=None, description="The predicted value (regressors).")


class PredictResponse(BaseModel):
    model: ModelRef
    predictions: list[RowPrediction]
    logged: bool = Field(
        description="Whether these rows went to the prediction log. Always true unless the "
        "server sheds rows under load (DRIFTLOOP_LOG_OVERFLOW=shed).")
    latency_ms: float = Field(description="Server time for this call, in milliseconds.")


#: A label: a class name (classifiers) or the true value (regressors: a number, or its text).
Label = Annotated[StrictStr, Field(min_length=1, max_length=200)] | StrictInt | StrictFloat


class FeedbackItem(_Body):
    request_id: StrictStr = Field(min_length=1, max_length=64)
    label: Label


class FeedbackRequest(_Body):
    """Either one ``request_id`` + ``label``, or ``labels``: a list of them."""

    request_id: StrictStr | None = Field(default=None, min_length=1, max_length=64)
    label: Label | None = None
    labels: list[FeedbackItem] | None = None


class FeedbackResponse(BaseModel):
    recorded: list[str] = Field(description="Request ids whose label was stored now.")
    already_recorded: list[str] = Field(
        description="Request ids that had a label already (the first one is kept).")
    not_yet_matched: list[str] = Field(
        description="Of `recorded`: ids whose prediction is not in the log yet (accepted, "
        "not yet matched). Each joins its prediction when that row is written; one still "
        "unmatched after DRIFTLOOP_FEEDBACK_ORPHAN_GRACE_S counts as an orphan.")


class HealthResponse(BaseModel):
    status: Literal["ok"]


class ReadyResponse(BaseModel):
    status: Literal["ready"]
    model: ModelRef


class FeatureLists(BaseModel):
    numeric: list[str]
    categorical: list[str]
    nullable: list[str] = Field(default_factory=list, description="Features that may be "
                                "null in /predict (the spec's features.nullable).")


class ShadowInfo(BaseModel):
    version: str | None = Field(description="The version scored beside the served one.")
    role: Literal["challenger", "probation"] | None = Field(
        description="challenger: the shadow stage; probation: the previous champion, kept "
        "scoring after a promotion.")
    scored_rows: int = Field(description="Rows this replica's shadow model answered.")
    skipped_rows: int = Field(description="Rows it skipped (queue full, or scoring failed).")
    error: str | None = Field(default=None, description="Why the shadow model the registry "
                              "names is not loaded.")


class ModelInfo(BaseModel):
    name: str
    version: str
    run_id: str | None
    aliases: list[str] = Field(description="Registry aliases of this version when loaded.")
    pinned: bool = Field(description="Loaded because DRIFTLOOP_MODEL_VERSION pins it.")
    inference_form: Literal["onnx", "sklearn"]
    tags: dict[str, str] = Field(description="Lineage tags of the registered version.")
    task: TaskName = Field(
        description="What the model predicts: a class (answers carry `label` and "
        "`probabilities`) or a value (answers carry `value`).")
    labels: list[str] = Field(description="A classifier's classes; a regressor's target name.")
    features: FeatureLists
    reference_rows: int
    loaded_at: datetime
    shadow: ShadowInfo | None = Field(
        default=None, description="What scores beside the served model, if anything.")


class WindowInfo(BaseModel):
    mode: Literal["interval", "latest"]
    start: datetime | None = Field(description="Interval start, or the oldest row's time.")
    end: datetime | None = Field(description="Interval end (exclusive), or the newest row's "
                                 "time.")
    rows: int = Field(description="Rows tested.")
    rows_total: int = Field(description="Rows in the window (more than `rows` when sampled).")
    sampled: bool


class ReferenceInfo(BaseModel):
    model_version: str
    rows: int


class Thresholds(BaseModel):
    p_value: float
    min_effect: float
    min_rows: int
    min_change: float
    min_rate: float
    unseen_alarm: float
    min_shift_sd: float
    min_shift_change_sd: float


class Change(BaseModel):
    feature: str
    test: str
    effect_size: float = Field(description="Share of rows moved: KS distance, or total "
                               "variation distance for categoricals.")
    shift_sd: float | None = Field(description="Numeric: how far rows moved on average, in "
                                   "reference standard deviations (Wasserstein).")
    unseen_rate: float | None = Field(description="Categorical: share of the window's rows "
                                      "in categories the reference never saw.")
    missing_rate: float | None = Field(default=None, description="Nullable feature: share "
                                       "of the window's rows where it is missing.")
    reference_missing_rate: float | None = Field(default=None, description="Nullable "
                                                 "feature: the same share in the reference.")
    refused_rate: float = Field(default=0.0, description="Share of the window's rows (served "
                                "plus refused) that /predict refused for a bad value of it.")
    p_value_adjusted: float
    drifted: bool = Field(description="Big enough for the alarm, not only a change.")
    description: str = Field(examples=["spread 0.62x the reference", "mean +1.3 sd",
                                       "'web' 12% -> 31%", "new category 'x' at 4%",
                                       "missing 0% -> 9%"])


class Refused(BaseModel):
    rows: int = Field(description="Rows /predict refused (422) for a bad feature value in "
                      "the window; they were never answered or logged.")
    rate: float = Field(description="Their share of the window's rows, served plus refused.")
    by_feature: dict[str, dict[str, int]] = Field(
        description="Refused rows per feature and reason (missing, type, range); a refused "
        "batch counts against the first bad feature.",
        examples=[{"petal_width": {"missing": 12}}])
    description: str


class OutputDrift(BaseModel):
    status: Literal["ok", "insufficient_data", "no_reference"]
    rows: int = Field(description="Predictions (or labels) of the window's rows compared.")
    drifted: bool
    changed: bool
    kind: Literal["numeric", "categorical"] | None = Field(
        default=None, description="categorical: a classifier's classes; numeric: a "
        "regressor's values.")
    test: str | None = None
    statistic: float | None = None
    p_value: float | None = None
    effect_size: float | None = Field(
        default=None, description="Total variation distance (classes); the Wasserstein "
        "distance in reference standard deviations (values).")
    shift_sd: float | None = Field(
        default=None, description="Values: the shift of the median, in reference standard "
        "deviations.")
    unseen_rate: float | None = None
    description: str | None = None
    message: str | None = None


class DriftStatus(BaseModel):
    status: Literal["ok", "insufficient_data"]
    dataset_drift: bool = Field(description="The alarm: some feature drifted.")
    drifted_features: list[str]
    changes: list[Change] = Field(
        default_factory=list,
        description="Every feature with a real change, drifted ones first, then by effect: "
        "what a person acts on.")
    features: list[FeatureDrift] = Field(
        description="Per feature: test (registry name), statistic, p-value (raw and "
        "corrected), effect sizes, drifted (the alarm), changed (the attribution), "
        "description.")
    refused: Refused | None = Field(
        default=None, description="Rows refused for bad values in the window: reported, but "
        "never the alarm (a retrain cannot learn from rows it never saw; alert "
        "DriftloopRefusedInputs).")
    prediction: OutputDrift | None = Field(
        default=None, description="Predicted classes (or values) against the model's "
        "predictions on its reference.")
    label: OutputDrift | None = Field(
        default=None, description="Feedback labels of the window's rows against the training "
        "labels.")
    prediction_drift: bool = False
    label_drift: bool = False
    window: WindowInfo
    reference: ReferenceInfo
    correction: Literal["bonferroni", "bh"]
    thresholds: Thresholds
    model: ModelRef
    message: str | None = Field(default=None,
                                description="Why there is no verdict (insufficient_data).")


class WindowPage(BaseModel):
    rows: list[dict[str, Any]] = Field(
        description="Each: ts, request_id, model_version, the features by name, prediction, "
        "label (null without feedback).")
    total: int
    offset: int
    limit: int
    next_offset: int | None


class ReloadRequest(_Body):
    version: Annotated[StrictStr, Field(pattern=r"^\s*[0-9]{1,18}\s*$")] | Annotated[
        StrictInt, Field(ge=1, le=10**18)] | None = Field(
        default=None, description="A registered version; omitted: the current champion.",
        examples=["2"])
    this_replica_only: StrictBool = Field(
        default=False, description="Reload even though other replicas share the prediction "
        "log: only this process changes. Without it such a reload is refused (409), since "
        "the others would keep serving the old version.")


class ReloadResponse(BaseModel):
    status: Literal["reloaded", "unchanged"]
    model: ModelInfo
    previous_version: str | None
    shadow: ShadowInfo | None = Field(
        default=None, description="What scores beside the served model after the reload.")


class ReportInfo(BaseModel):
    name: str
    url: str = Field(description="Where the report opens (GET), relative to the server.")
    bytes: int
    content_type: str


class RetentionResponse(BaseModel):
    retention_days: float = Field(description="DRIFTLOOP_LOG_RETENTION_DAYS; 0: off.")
    skipped: str | None = Field(default=None, description="Why nothing was deleted.")
    cutoff: str | None = Field(default=None, description="Rows older than this were removed.")
    held_back_by: str | None = Field(
        default=None, description="The registered version whose training window moved the "
        "cutoff earlier than the retention period, if any.")
    predictions_deleted: int = 0
    labels_deleted: int = 0
    reports_deleted: int = 0
    shadow_deleted: int = 0
    partitions_dropped: list[str] = Field(
        default_factory=list, description="PostgreSQL day partitions dropped.")
    archived: list[str] = Field(default_factory=list, description="Parquet files written.")
    batches: int = 0
    seconds: float = 0.0


class ReportEntry(BaseModel):
    name: str
    url: str
    bytes: int


class ReportList(BaseModel):
    reports: list[ReportEntry]


#: Error responses every route may give (merged into each route's OpenAPI).
def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    text = {400: "Malformed request body", 401: "Missing bearer token",
            403: "Wrong bearer token, or reload disabled", 404: "Not found",
            409: "Other replicas share this server's prediction log",
            413: "Body or batch over the limit", 422: "Invalid input (the detail names it)",
            503: "No model loaded yet, or the registry is unreachable"}
    return {code: {"model": ErrorResponse, "description": text[code]} for code in codes}
