"""The closing timeline and summary of a demo run."""

from __future__ import annotations

from typing import TextIO

from demo.scenario import DemoResult, _verdict, live_quality, under_load_verdict
from driftloop.spec import load_spec


def render(result: DemoResult, out: TextIO) -> None:
    p = result.phases
    start = result.timeline[0].at if result.timeline else None

    def say(line: str = "") -> None:
        print(line, file=out)

    say()
    say("=" * 78)
    say(f"driftloop demo: the closed loop on {result.model_name}, "
        f"{result.seconds:.0f}s end to end")
    say("=" * 78)
    say("timeline (seconds since the first step)")
    for event in result.timeline:
        offset = (event.at - start).total_seconds() if start else 0.0
        say(f"  {offset:6.1f}  {event.what}")
    say()
    say("versions")
    say(f"  champion before: v{result.champion_before} (bootstrap)")
    say(f"  champion after:  v{result.champion_after}  tags: "
        + ", ".join(f"{k}={result.lineage.get(k)}" for k in
                    ("trigger", "airflow_run_id", "kfp_run_id", "window_start", "window_end")))
    say()
    say("drift in the drifted window (per feature its registered test, Bonferroni-corrected)")
    drift = p["drift"].drift or {}
    say(f"  {'feature':<14} {'test':<9} {'p (corr.)':>9} {'KS D':>5} {'sd':>5}  verdict  how")
    for f in drift.get("features", []):
        verdict = "DRIFT" if f.get("drifted") else ("changed" if f.get("changed") else "-")
        shift = f.get("shift_sd")
        say(f"  {f['feature']:<14} {f['test']:<9} {f['p_value_adjusted']:>9.1e} "
            f"{f['effect_size']:>5.2f} {'' if shift is None else f'{shift:.2f}':>5}  "
            f"{verdict:<7}  {f.get('description') or ''}")
    for name in ("prediction", "label"):
        part = drift.get(name) or {}
        said = (("DRIFT: " if part.get("drifted") else "no drift: ")
                + str(part.get("description")) if part.get("status") == "ok"
                else f"no verdict ({part.get('message')})")
        say(f"  {name} drift ({part.get('rows', 0)} rows): {said}")
    say()
    spec = load_spec(result.config.spec_path)
    say(f"{spec.task} quality on live traffic (client-side, from the feedback labels)")
    rows = [(f"stable traffic, v{result.champion_before}", p["stable"].served),
            (f"drifted traffic, v{result.champion_before} (before the retrain)",
             p["drift"].served),
            (f"drifted traffic, v{result.champion_after} (after the swap)", result.after)]
    for label, served in rows:
        say(f"  {label:<42} {live_quality(spec, served)}")
    bg = result.background
    say(f"  during the retrain and hot swap: {bg.sent} requests, {bg.failed} failed, "
        f"{bg.labels_sent} labels, {bg.labels_failed} failed")
    say("    answered by " + (", ".join(f"v{v}: {n}" for v, n in
                                    sorted(bg.total_by_version.items())) or "no version")
        + f"; {under_load_verdict(bg, result.champion_before, result.champion_after)}")
    if result.time_to_recovery_s is not None:
        say(f"  time to recovery (first drifted request -> new champion serving): "
            f"{result.time_to_recovery_s:.1f}s")
    say()
    say("decisions of the drift monitor DAG")
    for name in ("stable", "drift", "broken"):
        say(f"  {name:<7} {p[name].dag_run_id}: {_verdict(p[name])}")
    say()
    say("where to look")
    for key, label in (("evaluation_report", "evaluation report (drift, plots, gate)"),
                       ("evaluation_report_mlflow", "the same in MLflow (version tag)"),
                       ("kfp_run", "KFP run artifacts"),
                       ("validation_report", "refused window's validation report"),
                       ("validation_report_url", "the same, stored with the log (make up)"),
                       ("mlflow_store", "MLflow store"), ("prediction_log", "prediction log")):
        if result.artifacts.get(key):
            say(f"  {label:<40} {result.artifacts[key]}")
    say("  MLflow UI and Airflow UI on these same runs: make up  (then http://127.0.0.1:5000 "
        "and http://127.0.0.1:8080, admin / driftloop); make down to stop")
