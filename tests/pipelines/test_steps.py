"""The pipeline's steps as plain functions (driftloop.retrain, driftloop.evaluation), in
process: parameters, dataset provenance, validation, the evaluation holdout, idempotent
registration, alias restore, failure reporting, the run-local command line."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from driftloop import promotion, retrain, run_context
from driftloop.data import load_training_data
from driftloop.errors import DataError, DriftloopError
from driftloop.gate import GateThresholds
from driftloop.gate.evaluation import ORIGIN_COLUMN, evaluate, holdout_positions, training_frame
from driftloop.settings import PROJECT_ROOT, Settings
from driftloop.spec import load_spec
from driftloop.training import split, train
from kfp_pipelines.local_run import UsageError, parse_params
from tests.conftest import IRIS_SPEC, paired_gate
from tests.pipelines.conftest import MODEL, PETAL_SHIFT, WINDOW, LocalLoop, iris_rows

SPEC = load_spec(IRIS_SPEC)


def ctx_for(loop: LocalLoop, monkeypatch: pytest.MonkeyPatch) -> run_context.Context:
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(loop.state))
    return run_context.context("", str(IRIS_SPEC))


# --- parameters -----------------------------------------------------------------------------


def test_lineage_normalises_the_window_and_keys_runs_by_their_parameters() -> None:
    ctx = run_context.Context(Settings(), SPEC, MODEL)
    a = run_context.Lineage("drift", "2026-03-01T10:00:00Z", "2026-03-01T11:00:00+00:00", "r1",
                        kfp_run_id="111")
    b = run_context.Lineage("drift", "2026-03-01T10:00:00+00:00", "2026-03-01T12:00:00+01:00",
                        "r1", kfp_run_id="222")
    assert a.window_start == "2026-03-01T10:00:00+00:00"
    assert b.window_end == "2026-03-01T11:00:00+00:00"
    assert a.run_key(ctx) == b.run_key(ctx)  # same request, other KFP run
    assert run_context.Lineage("drift", a.window_start, a.window_end, "r2").run_key(ctx) != \
        a.run_key(ctx)
    assert run_context.Lineage("schedule", a.window_start, a.window_end, "r1").run_key(ctx) != \
        a.run_key(ctx)
    naive = run_context.Lineage("manual", "2026-03-01T10:00:00", "2026-03-01T11:00:00")
    assert naive.window == a.window  # naive times are UTC


@pytest.mark.parametrize(("args", "message"), [
    (("retrain",), "trigger must be one of drift, schedule, manual, got 'retrain'"),
    (("drift", "2026-03-01T10:00:00Z", ""), "give both window_start and window_end"),
    (("drift", "yesterday", "2026-03-01T11:00:00Z"),
     "window_start 'yesterday' is not an ISO-8601 date-time"),
    (("drift", "2026-03-01T11:00:00Z", "2026-03-01T10:00:00Z"),
     "window_start 2026-03-01T11:00:00+00:00 is not before window_end"),
])
def test_bad_run_parameters_are_refused_with_the_reason(args: tuple[str, ...],
                                                        message: str) -> None:
    with pytest.raises(DriftloopError) as err:
        run_context.Lineage(*args)
    assert message in str(err.value)


def test_deploy_target_is_checked_before_anything_runs() -> None:
    run_context.check_deploy_target("kubernetes")
    with pytest.raises(DriftloopError, match="unknown deploy target 'helm'"):
        run_context.check_deploy_target("helm")


def test_run_record_round_trips(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(tmp_path))
    lin = run_context.Lineage("drift", *WINDOW, "r1", "42", "driftloop-retrain-x")
    ctx, back = run_context.from_run_record(run_context.run_record(MODEL, "specs/iris.yaml", lin))
    assert back == lin
    assert ctx.name == MODEL and ctx.spec == SPEC  # relative spec path: the project's


def test_run_local_params_are_typed_from_the_pipeline_defaults() -> None:
    assert parse_params(["trigger=drift", "min_value=0.9", "min-fresh-rows=12",
                         "window_start=2026-03-01T10:00:00Z"]) == {
        "trigger": "drift", "min_value": 0.9, "min_fresh_rows": 12,
        "window_start": "2026-03-01T10:00:00Z"}
    with pytest.raises(UsageError, match="unknown parameter"):
        parse_params(["thresholds=1"])
    with pytest.raises(UsageError, match="min_fresh_rows='many': not a valid int"):
        parse_params(["min_fresh_rows=many"])
    with pytest.raises(UsageError, match="expected NAME=VALUE"):
        parse_params(["trigger"])


def test_run_local_usage_error_exits_2_before_running() -> None:
    proc = subprocess.run([sys.executable, "-m", "kfp_pipelines", "run-local", "--param",
                           "threshold=0.9"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert "kfp_pipelines: error: --param 'threshold': unknown parameter" in proc.stderr


# --- failure reporting ------------------------------------------------------------------------


def test_step_failure_prints_one_marker_line_and_exits_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_, retrain.step("validate_data"):
        raise DataError("invalid data (3 rows)")
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert out == ('DRIFTLOOP_STEP_FAILED {"step": "validate_data", "error": '
                   '"invalid data (3 rows)"}\n')
    assert err == "driftloop: step validate_data failed: invalid data (3 rows)\n"
    with pytest.raises(KeyError), retrain.step("train_model"):  # a bug keeps its traceback
        raise KeyError("x")
    assert '"error": "KeyError: \'x\'"' in capsys.readouterr().out


# --- load_data ----------------------------------------------------------------------------


def test_load_data_joins_source_and_labeled_window_rows_with_provenance(
    loop: LocalLoop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    loop.log_labeled_rows(iris_rows(60, seed=2, shift=PETAL_SHIFT))
    # Rows outside the window are not read.
    loop.log_labeled_rows(iris_rows(7, seed=3), window=("2026-03-02T00:00:00Z",
                                                         "2026-03-02T01:00:00Z"))
    ctx = ctx_for(loop, monkeypatch)
    lin = run_context.Lineage("drift", *WINDOW, "r1")
    out = tmp_path / "data"
    meta = retrain.load_data(ctx, lin, out)

    assert (meta["rows_source"], meta["rows_production"], meta["rows_total"]) == (150, 60, 210)
    assert json.loads(meta["production_rows_by_served_version"]) == {"1": 60}
    assert meta["window_start"] == "2026-03-01T10:00:00+00:00"
    assert meta["prediction_log"] == f"sqlite:///{loop.state / 'predictions.db'}"
    assert meta["run_key"] == lin.run_key(ctx) and meta["spec_hash"] == SPEC.content_hash()
    frame = pd.read_parquet(out)
    assert frame[ORIGIN_COLUMN].value_counts().to_dict() == {"source": 150, "production": 60}
    prod = frame[frame[ORIGIN_COLUMN] == "production"]
    assert prod["driftloop_ts"].between(pd.Timestamp(WINDOW[0]), pd.Timestamp(WINDOW[1])).all()
    assert prod["driftloop_request_id"].str.len().eq(32).all()
    assert set(prod["species"]) == {"setosa", "versicolor", "virginica"}

    without = retrain.load_data(ctx, run_context.Lineage("manual"), tmp_path / "d2")
    assert (without["rows_production"], without["prediction_log"]) == (0, "")


# --- validate_data ------------------------------------------------------------------------


def test_unknown_labels_fail_validation_and_the_report_is_written_first(
    loop: LocalLoop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    rows = iris_rows(40, seed=4)
    rows.loc[:4, "species"] = "Iris-setosa"  # a labeling tool with other names
    loop.log_labeled_rows(rows)
    ctx = ctx_for(loop, monkeypatch)
    retrain.load_data(ctx, run_context.Lineage("drift", *WINDOW), tmp_path / "data")
    report = tmp_path / "report.html"
    with pytest.raises(DataError) as err:
        retrain.validate_data(ctx, tmp_path / "data", report)
    assert ("known labels: 5 production rows carry labels the model does not know: "
            "['Iris-setosa']") in str(err.value)
    assert str(report) in str(err.value)
    assert "Iris-setosa" in report.read_text()


def test_without_a_champion_the_suite_comes_from_the_source_data(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(settings.state_dir))
    ctx = run_context.context("", str(IRIS_SPEC))
    retrain.load_data(ctx, run_context.Lineage("manual"), tmp_path / "data")
    summary = retrain.validate_data(ctx, tmp_path / "data", tmp_path / "r.html")
    assert summary["valid"] is True
    assert summary["suite"] == "built from the spec's source data (no champion yet)"
    assert summary["expectations"]["source"]["success"] is True


# --- evaluation: the same holdout, fresh rows first -------------------------------------------


def _retrain_frame(fresh_rows: int) -> pd.DataFrame:
    source = load_training_data(SPEC).frame.assign(**{ORIGIN_COLUMN: "source"})
    fresh = iris_rows(fresh_rows, seed=9, shift=PETAL_SHIFT)[[*SPEC.feature_names, "species"]]
    return pd.concat([source, fresh.assign(**{ORIGIN_COLUMN: "production"})],
                     ignore_index=True)


def test_holdout_positions_are_the_training_holdout() -> None:
    frame = _retrain_frame(90)
    loaded, origin = training_frame(frame, SPEC)
    positions = holdout_positions(loaded.frame, SPEC)
    expected = split(loaded.frame, SPEC).x_test
    assert loaded.frame.iloc[positions][SPEC.feature_names].reset_index(drop=True) \
        .equals(expected)
    assert len(origin) == 240 and len(positions) == 48


def test_gate_judges_on_fresh_holdout_rows_when_there_are_enough() -> None:
    frame = _retrain_frame(240)
    loaded, origin = training_frame(frame, SPEC)
    champion = train(load_training_data(SPEC).frame, SPEC).model
    challenger = train(loaded.frame, SPEC).model
    thresholds = GateThresholds.from_spec(SPEC)
    fresh_in_holdout = int((origin.iloc[holdout_positions(loaded.frame, SPEC)]
                            == "production").sum())

    ev = evaluate(SPEC, frame, challenger, champion, thresholds, champion_version="1",
                  min_fresh_rows=30)
    assert ev.gate.holdout == "fresh labeled"
    assert ev.gate.holdout_rows == ev.fresh_holdout_rows == fresh_in_holdout >= 30
    assert ev.holdout_rows == 78
    assert ev.gate.passed
    assert ev.gate.champion < 0.6 < 0.9 <= ev.gate.challenger
    # Compared row by row on those same rows: the champion misses what the challenger gets.
    assert ev.gate.test == "mcnemar" and ev.gate.champion_only is not None
    assert ev.gate.difference == pytest.approx(ev.gate.challenger - ev.gate.champion)
    assert ev.gate.difference == pytest.approx(
        (ev.gate.challenger_only - ev.gate.champion_only) / ev.gate.holdout_rows)
    assert 0 < ev.gate.low < ev.gate.difference < ev.gate.high and ev.gate.p_value < 0.001
    assert ev.flat_metrics()["gate_interval_low"] == ev.gate.low
    assert ev.scores["champion"]["gate"]["support"] == ev.gate.holdout_rows
    assert (ev.gate_frame[ORIGIN_COLUMN] == "production").all()

    few = evaluate(SPEC, frame, challenger, champion, thresholds, champion_version="1",
                   min_fresh_rows=1000)
    assert few.gate.holdout == "holdout" and few.gate.holdout_rows == 78
    assert few.scores["challenger"]["gate"] == few.scores["challenger"]["holdout"]

    alone = evaluate(SPEC, frame, challenger, None, thresholds, champion_version=None,
                     min_fresh_rows=30)
    assert set(alone.scores) == {"challenger"} and alone.gate.champion is None
    assert "no champion to compare against" in alone.gate.reason


def test_champion_that_cannot_score_the_holdout_is_a_clear_error() -> None:
    frame = _retrain_frame(60)
    challenger = train(training_frame(frame, SPEC)[0].frame, SPEC).model

    class Broken:
        classes_ = np.array(["setosa"])

        def predict(self, x: pd.DataFrame) -> None:
            raise ValueError("columns are missing: {'bill_length_mm'}")

    with pytest.raises(DriftloopError, match="the champion v1 cannot score the holdout: "
                                             "columns are missing"):
        evaluate(SPEC, frame, challenger, Broken(), GateThresholds.from_spec(SPEC),
                 champion_version="1", min_fresh_rows=30)


# --- register: idempotent per run key; aliases restored only when still ours ------------------


def test_register_promotes_once_per_run_key(
    loop: LocalLoop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    from driftloop.bootstrap import bootstrap

    ctx = ctx_for(loop, monkeypatch)
    lin = run_context.Lineage("schedule", *WINDOW, "weekly__1")
    retrain.load_data(ctx, lin, tmp_path / "data")
    info = retrain.train(ctx, lin, tmp_path / "data", tmp_path / "model")
    gate = paired_gate(30, both=26, champion_only=0, challenger_only=3)
    assert gate.passed

    first = promotion.register(ctx, lin, info["run_id"], info["model_uri"], gate, promote=True)
    assert (first.version, first.promoted, first.deploy_version) == ("2", True, "2")
    assert (first.old_champion, first.old_previous) == ("1", "")
    tags = loop.versions()["2"]
    assert tags["run_key"] == lin.run_key(ctx) and tags["retrain_outcome"] == "promoted"
    assert tags["gate_reason"] == gate.reason and tags["trigger"] == "schedule"
    assert tags["spec_hash"] == SPEC.content_hash() and tags["inference_form"] == "onnx"
    # On probation: the old champion scores beside it (DRIFTLOOP_PROBATION_HOURS, 24 h).
    assert datetime.fromisoformat(tags["probation_until"]) > datetime.now(UTC)

    again = promotion.register(ctx, lin, info["run_id"], info["model_uri"], gate, promote=True)
    assert (again.version, again.promoted, again.deploy_version) == ("2", False, "2")
    assert "already promoted as v2 (still champion" in again.note
    rejected = promotion.register(ctx, lin, info["run_id"], info["model_uri"], gate,
                                promote=False)
    assert (rejected.version, rejected.deploy_version) == ("2", "")
    assert sorted(loop.versions()) == ["1", "2"]
    # Too few rows to decide: registered without alias, and told apart from a rejection.
    undecided = paired_gate(30, both=28, champion_only=0, challenger_only=0)
    other = run_context.Lineage("schedule", *WINDOW, "weekly__2")
    recorded = promotion.register(ctx, other, info["run_id"], info["model_uri"], undecided,
                                  promote=False)
    assert (recorded.version, recorded.promoted, loop.alias("champion")) == ("3", False, "2")
    assert loop.versions()["3"]["retrain_outcome"] == "insufficient_evidence"
    assert loop.versions()["3"]["gate_outcome"] == "insufficient_evidence"

    bootstrap(loop.settings, force=True)  # v4 takes over; an old rerun must not undo that
    late = promotion.register(ctx, lin, info["run_id"], info["model_uri"], gate, promote=True)
    assert (late.version, late.promoted, late.deploy_version) == ("2", False, "")
    assert "the champion has since moved to v4: left alone" in late.note
    assert loop.alias("champion") == "4"


def test_restore_aliases_leaves_a_champion_someone_else_moved(loop: LocalLoop) -> None:
    from driftloop.bootstrap import bootstrap

    bootstrap(loop.settings, force=True)  # v2 champion, v1 previous
    client = loop.client()
    assert promotion.restore_aliases(client, MODEL, "5", "1", "") == \
        "champion alias points at v2 (not v5): left alone"
    assert (loop.alias("champion"), loop.alias("previous")) == ("2", "1")
    assert promotion.restore_aliases(client, MODEL, "2", "1", "") == \
        "champion alias restored to v1"
    assert (loop.alias("champion"), loop.alias("previous")) == ("1", None)


def test_failed_deploy_of_the_standing_champion_moves_no_alias(
    loop: LocalLoop, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DRIFTLOOP_STATE_DIR", str(loop.state))
    monkeypatch.setenv("DRIFTLOOP_ADMIN_TOKEN", "t")
    monkeypatch.setenv("DRIFTLOOP_SERVER_URL", "http://127.0.0.1:9")
    ctx = run_context.context("", str(IRIS_SPEC))
    with pytest.raises(DriftloopError, match="v1 was already champion: aliases unchanged"):
        promotion.deploy(ctx, "local", "1", old_champion="1", old_previous="", timeout_s=1)
    assert loop.alias("champion") == "1"
    assert promotion.deploy(ctx, "local", "", old_champion="1", old_previous="",
                          timeout_s=1).status == "skipped"


def test_summary_reports_what_the_run_changed() -> None:
    before = {"champion": "1", "previous": None, "run_key_versions": {}}
    after = {"champion": "2", "previous": "1", "run_key_versions": {"2": {
        "retrain_outcome": "promoted", "gate_passed": "true", "gate_reason": "passed: x",
        "gate_metric": "accuracy", "kfp_run_id": "7", "kfp_run_name": "driftloop-retrain-1"}}}
    summary = promotion.summarize(before, after)
    assert summary == {
        "champion_before": "1", "champion_after": "2", "promoted": True, "new_version": "2",
        "version": "2", "outcome": "promoted",
        "gate": {"passed": True, "reason": "passed: x", "metric": "accuracy"},
        "deploy_error": None,
    }
    rerun = promotion.summarize(after, after)
    assert (rerun["promoted"], rerun["new_version"], rerun["version"]) == (False, None, "2")


# --- a failing first step fails the whole run, named -------------------------------------------


@pytest.mark.slow
def test_run_local_names_the_failing_step_and_cause(loop: LocalLoop) -> None:
    summary, proc = loop.run_pipeline("trigger=retrain", "deploy_target=local")
    assert proc.returncode == 1
    assert summary["status"] == "failed" and summary["failed_step"] == "load_data"
    assert summary["error"] == "trigger must be one of drift, schedule, manual, got 'retrain'"
    assert (summary["champion_before"], summary["champion_after"]) == ("1", "1")
    assert summary["run_key"] is None  # the parameters never formed a valid request
    assert sorted(loop.versions()) == ["1"] and loop.alias("champion") == "1"
    assert proc.stdout.count("\n") == 1  # stdout is the JSON line only


def test_run_key_lookup_works_on_sqlite_and_postgresql_stores(mlflow_settings: Settings) -> None:
    """Idempotency rests on the registry filtering versions by tag; both backends must."""
    from driftloop.bootstrap import bootstrap
    from driftloop.registry import connect, register_version

    first = bootstrap(mlflow_settings).info
    client = connect(mlflow_settings)
    source = client.get_model_version(MODEL, "1").source
    for key in ("aaaa", "bbbb", "aaaa"):
        register_version(client, MODEL, first["run_id"], source, {promotion.TAG_RUN_KEY: key})
    found = promotion.versions_with_run_key(client, MODEL, "aaaa")
    assert [str(mv.version) for mv in found] == ["4", "2"]  # newest first
    assert promotion.versions_with_run_key(client, MODEL, "cccc") == []


def test_load_data_with_the_log_down_is_a_clear_error_and_changes_nothing(
    loop: LocalLoop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The prediction log's database refuses connections for the whole step: the step fails
    naming the log (password masked), writes no dataset, and the champion stays."""
    import socket

    from driftloop.registry import alias_version, connect

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("DRIFTLOOP_PREDICTION_LOG_URL",
                       f"postgresql://driftloop:s3cret@127.0.0.1:{port}/predictions")
    ctx = ctx_for(loop, monkeypatch)
    out = tmp_path / "dataset.parquet"
    with pytest.raises(DataError) as err:
        retrain.load_data(ctx, run_context.Lineage("drift", *WINDOW, "r1"), out)
    message = str(err.value)
    assert message.startswith("cannot read labeled rows from the prediction log "
                              f"postgresql://driftloop:***@127.0.0.1:{port}/predictions: "
                              "OperationalError")
    assert "s3cret" not in message
    assert not out.exists()
    champion = alias_version(connect(ctx.settings), MODEL, "champion")
    assert str(champion.version) == "1"


def test_with_the_shadow_stage_a_passing_challenger_becomes_challenger_not_champion(
    loop: LocalLoop, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:
    monkeypatch.setenv("DRIFTLOOP_SHADOW", "true")
    ctx = ctx_for(loop, monkeypatch)
    assert ctx.settings.shadow is True
    lin = run_context.Lineage("drift", *WINDOW, "scheduled__shadow")
    retrain.load_data(ctx, lin, tmp_path / "data")
    info = retrain.train(ctx, lin, tmp_path / "data", tmp_path / "model")
    gate = paired_gate(30, both=26, champion_only=0, challenger_only=3)

    first = promotion.register(ctx, lin, info["run_id"], info["model_uri"], gate, promote=True)
    # Not promoted: the champion is served again so that the servers load the challenger.
    assert (first.version, first.promoted, first.deploy_version) == ("2", False, "1")
    assert "in shadow beside champion v1: the live gate decides" in first.note
    assert (loop.alias("champion"), loop.alias("challenger"), loop.alias("previous")) == \
        ("1", "2", None)
    tags = loop.versions()["2"]
    assert tags["retrain_outcome"] == "shadow" and tags["shadow_started_at"]
    again = promotion.register(ctx, lin, info["run_id"], info["model_uri"], gate, promote=True)
    assert again.version == "2" and "already sent v2 to the shadow stage" in again.note
    assert sorted(loop.versions()) == ["1", "2"]
