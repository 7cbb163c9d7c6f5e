"""The drift monitor's decisions, as plain functions (the DAG wraps them in tasks).

Kept apart from the DAG file so that they are tested directly and the DAG stays a
declaration of the flow.
"""

from __future__ import annotations

import math
from typing import Any

SUBMIT = "retrain_parameters"
NO_RETRAIN = "no_retrain"


def drift_verdict(report: dict[str, Any], *, p_value: float | None = None,
                  min_effect: float | None = None) -> dict[str, Any]:
    """The server's drift report, optionally re-decided with the run's own thresholds.

    A feature drifts when its corrected p-value is under ``p_value`` and its effect size is
    at least ``min_effect`` — the server's rule (``driftloop.drift``). The corrected p-values
    do not depend on the level (Bonferroni and Benjamini-Hochberg alike), so re-deciding
    with another level is exact.
    """
    thresholds = dict(report.get("thresholds") or {})
    features = report.get("features") or []
    drifted = list(report.get("drifted_features") or [])
    dataset_drift = bool(report.get("dataset_drift"))
    if (p_value is not None or min_effect is not None) and report.get("status") == "ok":
        p = float(p_value if p_value is not None else thresholds["p_value"])
        effect = float(min_effect if min_effect is not None else thresholds["min_effect"])
        drifted = [f["feature"] for f in features
                   if f["p_value_adjusted"] < p and f["effect_size"] >= effect]
        dataset_drift = bool(drifted)
        thresholds.update({"p_value": p, "min_effect": effect, "overridden": True})
    window = report.get("window") or {}
    return {
        "status": report.get("status"),
        "dataset_drift": dataset_drift,
        "drifted_features": drifted,
        "rows": window.get("rows"),
        "window": window,
        "thresholds": thresholds,
        "model": report.get("model"),
        "features": [{k: f.get(k) for k in ("feature", "test", "statistic", "p_value_adjusted",
                                            "effect_size")} for f in features],
    }


def decide(verdict: dict[str, Any], rows_check: dict[str, Any] | None,
           validation: dict[str, Any] | None, *, force: bool = False) -> tuple[str, str]:
    """(next task id, why): retrain on drift (or when forced), else nothing.

    Invalid data never gets here: the validation task fails the run first.
    """
    enough = bool(rows_check.get("enough")) if rows_check else True
    insufficient = verdict.get("status") != "ok" or not enough
    valid = bool(validation and validation.get("validated") and validation.get("success"))
    if force:
        return SUBMIT, "forced by the run's `force` param"
    if insufficient:
        return NO_RETRAIN, (f"insufficient data: {verdict.get('rows')} rows in the window "
                            f"(status {verdict.get('status')!r}); nothing to decide")
    if not verdict.get("dataset_drift"):
        return NO_RETRAIN, "no drift: " + _thresholds_text(verdict)
    if not valid:
        return NO_RETRAIN, "drift, but the window was not validated; no retrain"
    features = ", ".join(verdict.get("drifted_features") or [])
    return SUBMIT, f"drift in {features} ({_thresholds_text(verdict)}); data valid"


def _thresholds_text(verdict: dict[str, Any]) -> str:
    t = verdict.get("thresholds") or {}
    return (f"corrected p < {t.get('p_value')} and effect >= {t.get('min_effect')} "
            f"on {verdict.get('rows')} rows")


def retrain_parameters(*, window: dict[str, str], reason: str, airflow_run_id: str,
                       model_name: str, params: dict[str, Any], deploy_target: str,
                       ) -> dict[str, Any]:
    """The retrain pipeline's parameters (kfp_pipelines.retrain_pipeline.PARAMETERS).

    Types match the pipeline's signature: the KFP API refuses a string for a number. An
    empty gate param becomes the pipeline's -1 ("the spec's gate").
    """
    def gate(name: str) -> float:
        value = params.get(name)
        return -1.0 if value is None else float(value)

    return {
        "model_name": params.get("model_name") or model_name or "",
        "spec": params.get("spec") or "",
        "trigger": reason,
        "window_start": window["start"],
        "window_end": window["end"],
        "airflow_run_id": airflow_run_id,
        "deploy_target": params.get("deploy_target") or deploy_target,
        "min_value": gate("gate_min_value"),
        "max_regression": gate("gate_max_regression"),
        "min_fresh_rows": int(params.get("min_fresh_rows", 30)),
        "deploy_timeout_s": int(params.get("deploy_timeout_s", 300)),
    }


def metrics_summary(families: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One number per series, ``name{labels}`` → value: small enough for XCom and the log.

    Non-finite values (a gauge with nothing to report yet is NaN) become None: XCom is JSON.
    """
    out: dict[str, Any] = {}
    for family in families.values():
        for sample in family["samples"]:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample["labels"].items()))
            key = f"{sample['name']}{{{labels}}}" if labels else sample["name"]
            if sample["name"].endswith(("_bucket", "_created")):
                continue
            value = sample["value"]
            out[key] = value if math.isfinite(value) else None
    return out

