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
                  min_effect: float | None = None,
                  act_on: list[str] | tuple[str, ...] = ("features",)) -> dict[str, Any]:
    """The server's drift report, optionally re-decided with the run's own thresholds, and
    what this run acts on.

    A feature drifts when its corrected p-value is under ``p_value`` and one of its effects
    passes the alarm's floor (``min_effect`` for the share of rows moved; the report's
    Wasserstein and unseen-category floors), or its missing rate moved by the unseen floor
    with a corrected p-value under ``p_value`` — the server's rule (``driftloop.drift``). The
    corrected p-values do not depend on the level (Bonferroni and Benjamini-Hochberg alike),
    so re-deciding with another level is exact. ``act_on`` names which drift answers move the
    run: ``features`` (the inputs), ``prediction`` (the predicted classes), ``label`` (the
    feedback labels).
    """
    unknown = sorted(set(act_on) - set(ACT_ON))
    if unknown:
        raise ValueError(f"act_on: unknown {', '.join(unknown)} (use {', '.join(ACT_ON)})")
    thresholds = dict(report.get("thresholds") or {})
    features = [dict(f) for f in report.get("features") or []]
    drifted = list(report.get("drifted_features") or [])
    dataset_drift = bool(report.get("dataset_drift"))
    if (p_value is not None or min_effect is not None) and report.get("status") == "ok":
        p = float(p_value if p_value is not None else thresholds["p_value"])
        effect = float(min_effect if min_effect is not None else thresholds["min_effect"])
        alarm_rate = thresholds.get("unseen_alarm", 2.0)
        for f in features:
            values = f["p_value_adjusted"] < p and (
                f["effect_size"] >= effect
                or (f.get("unseen_rate") or 0.0) >= alarm_rate
                or (f.get("shift_sd") or 0.0) >= thresholds.get("min_shift_sd", float("inf")))
            missing = (f.get("missing_p_value_adjusted") is not None
                       and f["missing_p_value_adjusted"] < p
                       and abs(f["missing_rate"] - f["reference_missing_rate"]) >= alarm_rate)
            f["drifted"] = bool(values or missing)
        drifted = [f["feature"] for f in features if f["drifted"]]
        dataset_drift = bool(drifted)
        thresholds.update({"p_value": p, "min_effect": effect, "overridden": True})
    window = report.get("window") or {}
    outputs = {name: _output(report.get(name)) for name in ("prediction", "label")}
    reasons = []
    if "features" in act_on and dataset_drift:
        reasons.append("drift in " + ", ".join(
            _named(f) for f in sorted((f for f in features if f.get("drifted")),
                                      key=lambda f: -f["effect_size"])))
    for name in ("prediction", "label"):
        if name in act_on and outputs[name].get("drifted"):
            reasons.append(f"{name} drift ({outputs[name].get('description')})")
    return {
        "status": report.get("status"),
        "dataset_drift": dataset_drift,
        "drifted_features": drifted,
        "act_on": list(act_on),
        "drift": bool(reasons),
        "reasons": reasons,
        "changes": [{"feature": c["feature"], "drifted": bool(c.get("drifted")),
                     "description": c.get("description")} for c in report.get("changes") or []],
        "prediction": outputs["prediction"],
        "label": outputs["label"],
        "refused": {k: (report.get("refused") or {}).get(k)
                    for k in ("rows", "rate", "description")},
        "message": report.get("message"),
        "rows": window.get("rows"),
        "window": window,
        "thresholds": thresholds,
        "model": report.get("model"),
        "features": [{k: f.get(k) for k in ("feature", "test", "statistic", "p_value_adjusted",
                                            "effect_size", "shift_sd", "unseen_rate",
                                            "missing_rate", "refused_rate", "drifted",
                                            "changed", "description")}
                     for f in features],
    }


#: The drift answers a run can act on (the DAG's ``act_on`` param).
ACT_ON = ("features", "prediction", "label")


def _named(feature: dict[str, Any]) -> str:
    said = feature.get("description")
    return f"{feature['feature']} ({said})" if said else feature["feature"]


def _output(part: dict[str, Any] | None) -> dict[str, Any]:
    part = part or {}
    return {k: part.get(k) for k in ("status", "rows", "drifted", "changed", "description",
                                     "effect_size", "p_value", "message")}


def changes_text(verdict: dict[str, Any]) -> str | None:
    """Every feature that changed, for the log and the decision: "petal_length (mean +2.1
    sd), channel ('web' 45% -> 36%, below the alarm)"."""
    parts = [f"{c['feature']} ({c['description']}"
             + ("" if c.get("drifted") else ", below the alarm") + ")"
             for c in verdict.get("changes") or []]
    return ", ".join(parts) or None


def decide(verdict: dict[str, Any], rows_check: dict[str, Any] | None,
           validation: dict[str, Any] | None, *, force: bool = False) -> tuple[str, str]:
    """(next task id, why): retrain on drift of what the run acts on (or when forced), else
    nothing.

    Invalid data never gets here: the validation task fails the run first.
    """
    enough = bool(rows_check.get("enough")) if rows_check else True
    insufficient = verdict.get("status") != "ok" or not enough
    valid = bool(validation and validation.get("validated") and validation.get("success"))
    if force:
        return SUBMIT, "forced by the run's `force` param"
    refused = (verdict.get("refused") or {})
    refused_text = f"; {refused['description']}" if refused.get("rows") else ""
    if insufficient:
        return NO_RETRAIN, (f"insufficient data: {verdict.get('rows')} rows in the window "
                            f"(status {verdict.get('status')!r}); nothing to decide"
                            f"{refused_text}")
    acting = verdict.get("drift", verdict.get("dataset_drift"))
    if not acting:
        said = "no drift: " + _thresholds_text(verdict)
        moved = changes_text(verdict)
        if moved:
            said += f"; changed: {moved}"
        return NO_RETRAIN, said + refused_text
    if not valid:
        return NO_RETRAIN, "drift, but the window was not validated; no retrain"
    reasons = verdict.get("reasons") or [
        "drift in " + ", ".join(verdict.get("drifted_features") or [])]
    return SUBMIT, f"{'; '.join(reasons)} ({_thresholds_text(verdict)}); data valid"


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

