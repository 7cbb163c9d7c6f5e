"""Great Expectations suites: generated from training data, used to validate live windows.

The suite says what *valid* data looks like, not what *undrifted* data looks like: drift
(a shifted distribution) must pass, broken data (nulls, wrong types, impossible values,
unknown categories in bulk, missing columns) must fail. Hence wide numeric bounds and a
``mostly`` that lets a few outliers through.

Only pandas and great_expectations are imported here, so the Airflow side can validate a
window without the ML stack.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from html import escape
from typing import Any

import pandas as pd

from driftloop.missing import MISSING_CATEGORY

#: Numeric bounds extend this fraction of the training range beyond its min and max: one full
#: span, so a population that grew 40 % larger still validates (it is drift, and the retrain
#: should learn it), while a unit change (cm -> mm, x10) or a negative length does not.
RANGE_TOLERANCE = 1.0
#: Share of rows that must satisfy each per-value expectation.
MOSTLY = 0.95
NUMERIC_TYPES = ["float64", "float32", "int64", "int32", "Float64", "Int64"]


def between_bounds(series: pd.Series) -> tuple[float, float]:
    lo, hi = float(series.min()), float(series.max())
    span = hi - lo or max(abs(hi), 1.0)
    low = lo - RANGE_TOLERANCE * span
    # Non-negative training data (lengths, counts, masses) stays non-negative.
    if lo >= 0:
        low = max(0.0, low)
    return round(low, 6), round(hi + RANGE_TOLERANCE * span, 6)


def build_suite(
    frame: pd.DataFrame, numeric: list[str], categorical: list[str], *, name: str,
    nullable: list[str] | tuple[str, ...] = (),
) -> dict[str, Any]:
    """A suite (as GE's JSON dict) describing the features of ``frame``.

    A feature the spec does not list as nullable must never be null (the server refuses such
    rows, so a null here is breakage). A nullable one has no null expectation: how often it
    is missing is a drift question (the missing rate), not validity."""
    expectations: list[dict[str, Any]] = [
        {
            "type": "expect_table_columns_to_match_set",
            "kwargs": {"column_set": [*numeric, *categorical], "exact_match": False},
            "meta": {"why": "every feature the model reads must be present"},
        }
    ]
    for col in [*numeric, *categorical]:
        if col in nullable:
            continue
        expectations.append({
            "type": "expect_column_values_to_not_be_null",
            "kwargs": {"column": col},
            "meta": {"why": "not in the spec's features.nullable: the server refuses rows "
                            "without it, and the model never learned to do without"},
        })
    for col in numeric:
        low, high = between_bounds(frame[col])
        expectations.append({
            "type": "expect_column_values_to_be_in_type_list",
            "kwargs": {"column": col, "type_list": NUMERIC_TYPES},
            "meta": {"why": "numeric feature"},
        })
        expectations.append({
            "type": "expect_column_values_to_be_between",
            "kwargs": {"column": col, "min_value": low, "max_value": high, "mostly": MOSTLY},
            "meta": {
                "why": f"training range [{frame[col].min():g}, {frame[col].max():g}] "
                f"widened by {RANGE_TOLERANCE:.0%} of its span: drift passes, broken "
                "units or sensors do not",
            },
        })
    for col in categorical:
        values = sorted({*map(str, frame[col].dropna().unique())} - {MISSING_CATEGORY})
        expectations.append({
            "type": "expect_column_values_to_be_in_set",
            "kwargs": {"column": col, "value_set": values, "mostly": MOSTLY},
            "meta": {"why": "categories seen in training; a few unseen ones are tolerated"},
        })
    return {"name": name, "expectations": expectations,
            "meta": {"generated_by": "driftloop", "training_rows": len(frame)}}


def spec_suite(frame: pd.DataFrame, spec: Any) -> dict[str, Any]:
    """The suite of a model spec's features and target (``spec``: a
    :class:`driftloop.spec.ModelSpec`; ``frame``: the training rows).

    The target's checks come from the task (a classifier's classes, a regressor's widened
    range) and read the column named in ``meta.target``: the retrain's dataset has it under
    the spec's target name, a live window under ``label`` (renamed before validating, see
    :func:`with_target`). Nulls pass: most live rows have no label yet."""
    suite = build_suite(frame[spec.feature_names], list(spec.features.numeric),
                        list(spec.features.categorical), name=f"{spec.name}-features",
                        nullable=list(spec.features.nullable))
    if spec.target in frame.columns:
        suite["expectations"].extend(
            spec.task_impl.target_expectations(frame[spec.target], spec.target))
        suite["meta"]["target"] = spec.target
    return suite


def with_target(frame: pd.DataFrame, suite: dict[str, Any],
                label_column: str = "label") -> pd.DataFrame:
    """A live window's rows with their feedback labels under the suite's target name."""
    target = suite.get("meta", {}).get("target")
    if not target or label_column not in frame.columns or target in frame.columns:
        return frame
    frame = frame.rename(columns={label_column: target})
    if any(e.get("meta", {}).get("numeric_target") for e in suite.get("expectations", [])):
        # The log keeps labels as text; a regressor's are numbers (checked at /feedback).
        frame[target] = pd.to_numeric(frame[target], errors="coerce")
    return frame


@dataclass
class Failure:
    expectation: str
    column: str | None
    unexpected_count: int | None
    unexpected_percent: float | None
    examples: list[Any] = field(default_factory=list)
    observed: Any = None

    def describe(self) -> str:
        where = f"column {self.column!r}: " if self.column else ""
        what = self.expectation.removeprefix("expect_").replace("_", " ")
        if self.unexpected_percent is not None:
            return (f"{where}{self.unexpected_percent:.1f}% of values fail '{what}' "
                    f"(e.g. {self.examples[:3]})")
        return f"{where}'{what}' failed (observed {self.observed})"


@dataclass
class ValidationReport:
    success: bool
    rows: int
    evaluated: int
    failures: list[Failure]

    def summary(self) -> str:
        if self.success:
            return f"{self.rows} rows pass all {self.evaluated} expectations"
        parts = "; ".join(f.describe() for f in self.failures)
        return (f"{len(self.failures)} of {self.evaluated} expectations failed on "
                f"{self.rows} rows: {parts}")

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "summary": self.summary()}

    def to_html(self, title: str) -> str:
        rows = "".join(
            f"<tr><td>{escape(f.expectation)}</td><td>{escape(str(f.column))}</td>"
            f"<td>{escape(f.describe())}</td></tr>"
            for f in self.failures
        ) or "<tr><td colspan=3>no failures</td></tr>"
        verdict = "PASSED" if self.success else "FAILED"
        return (
            f"<html><head><meta charset='utf-8'><title>{escape(title)}</title></head><body>"
            f"<h1>{escape(title)}: {verdict}</h1><p>{escape(self.summary())}</p>"
            "<table border=1 cellpadding=4><tr><th>expectation</th><th>column</th>"
            f"<th>detail</th></tr>{rows}</table></body></html>"
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def validate(frame: pd.DataFrame, suite: dict[str, Any]) -> ValidationReport:
    """Run a suite (GE JSON dict) on a DataFrame with an ephemeral GE context."""
    import great_expectations as gx

    if frame.empty:
        return ValidationReport(False, 0, 0, [Failure("expect_table_row_count_to_be_positive",
                                                      None, None, None, observed=0)])
    # Missing categoricals are null to Great Expectations, as on the wire; a numeric column
    # that is null in every row (a nullable feature upstream stopped sending) reads as
    # object from JSON: it is still a numeric column, with no values.
    frame = frame.replace({MISSING_CATEGORY: None})
    for item in suite.get("expectations", []):
        column = item.get("kwargs", {}).get("column")
        if (item.get("type") == "expect_column_values_to_be_in_type_list"
                and column in frame.columns and frame[column].isna().all()):
            frame[column] = frame[column].astype("float64")
    context = gx.get_context(mode="ephemeral")
    gx_suite = gx.ExpectationSuite(**{k: v for k, v in suite.items() if k != "id"})
    batch = (
        context.data_sources.add_pandas("driftloop")
        .add_dataframe_asset("window")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    result = batch.validate(gx_suite)
    failures = []
    for item in result.results:
        if item.success:
            continue
        res = item.result or {}
        failures.append(Failure(
            expectation=item.expectation_config.type,
            column=item.expectation_config.kwargs.get("column"),
            unexpected_count=res.get("unexpected_count"),
            unexpected_percent=res.get("unexpected_percent"),
            examples=[_jsonable(v) for v in (res.get("partial_unexpected_list") or [])[:5]],
            observed=_jsonable(res.get("observed_value")),
        ))
        if item.exception_info and item.exception_info.get("raised_exception"):
            failures[-1].observed = item.exception_info.get("exception_message")
    return ValidationReport(bool(result.success), len(frame), len(result.results), failures)
