"""What people click, in a real browser against ``make up`` (issue 15): the Airflow trigger
form with its defaults, the backfill dialog and the decision on the run, the model version's
HTML report in MLflow, and "Try it out" in the server's /docs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import httpx
import pytest

from tests.local_stack import DAG, Stack, log_past_hours, shown_end

pytestmark = pytest.mark.ui

WEEKLY = "driftloop_weekly_retrain"
MANUAL = "driftloop_manual_promotion"
MODEL = "iris-classifier"


def login(page: Any, stack: Stack) -> None:
    page.goto(stack.airflow + "/")
    page.locator("input[name=username]").fill("admin")
    page.locator("input[name=password]").fill(stack.password)
    page.locator("button[type=submit]").click()
    page.get_by_test_id("trigger-dag-button").or_(page.get_by_text("Dags").first).first \
        .wait_for()


def open_trigger_dialog(page: Any, stack: Stack, dag: str) -> Any:
    page.goto(f"{stack.airflow}/dags/{dag}")
    page.get_by_test_id("trigger-dag-button").click()
    dialog = page.get_by_role("dialog").first
    dialog.wait_for()
    return dialog


def read_decision(page: Any, stack: Stack, dag: str, run_id: str,
                  starts: str = "window ") -> str:
    """The run's `outcome` task → Storage → XCom, as a person opens it from the grid."""
    page.goto(f"{stack.airflow}/dags/{dag}/runs/{quote(run_id)}/tasks/outcome")
    page.get_by_role("link", name="Storage").click()
    page.get_by_text("XCom", exact=True).click()
    said = page.get_by_text(re.compile(f"^{starts}")).first.inner_text().strip()
    print(f"{dag} {run_id}: {said}")  # the decisions a run of this tier saw (-rP shows them)
    return said


def test_each_dag_triggers_from_its_form_with_the_defaults(page: Any, stack: Stack) -> None:
    """Finding 1: the Trigger button was disabled with the defaults. Finding 2: the run
    says what it decided. The weekly run retrains (the version test_mlflow_... opens)."""
    login(page, stack)
    for dag, timeout in ((DAG, 420), (WEEKLY, 900)):
        dialog = open_trigger_dialog(page, stack, dag)
        assert "Run Parameters" in dialog.inner_text()
        trigger = dialog.get_by_role("button", name="Trigger", exact=True)
        assert trigger.is_enabled(), f"{dag}: the form refuses its own defaults"
        trigger.click()
        page.wait_for_url(re.compile(rf"/dags/{dag}/runs/[^/]+$"))
        run_id = unquote(page.url.rsplit("/runs/", 1)[1])
        run = stack.wait_run(run_id, timeout=timeout, dag=dag)
        assert run["state"] == "success", stack.tasks(run_id, dag)
        said = read_decision(page, stack, dag, run_id)
        assert said == stack.xcom(run_id, "outcome", dag)
        if dag == DAG:  # the last complete hour: hardly any traffic in a fresh stack
            assert re.match(r"window \S+ → \S+ \(\d+ rows\); (insufficient data|no drift)",
                            said), said
        else:
            assert "; weekly scheduled retrain; retrain submitted: KFP run local-" in said
            assert re.search(r"succeeded: v\d+ (promoted|rejected by the gate|not promoted: "
                             r"the gate had too few rows to decide)", said), said


def test_a_backfill_from_the_dialog_names_the_hour_each_run_judged(page: Any,
                                                                   stack: Stack) -> None:
    hours = log_past_hours(stack, (80, 5), hours_ago=40, seed=75)
    login(page, stack)
    dialog = open_trigger_dialog(page, stack, DAG)
    dialog.get_by_text("Backfill", exact=True).click()
    # From and To come first; the window_start/window_end params below use the same picker.
    for i, when in enumerate((hours[0][0], hours[1][0])):
        dialog.get_by_test_id("datetime-input").nth(i).click()
        popover = page.get_by_role("dialog").last
        popover.get_by_placeholder("YYYY/MM/DD").fill(when.strftime("%Y/%m/%d"))
        popover.get_by_placeholder("HH:mm").fill(when.strftime("%H:%M"))
    dialog.get_by_text("Max Active Runs").click()  # closes the picker
    dialog.get_by_text("2 runs will be triggered.").wait_for()
    dialog.get_by_role("button", name="Run Backfill").click()

    def backfilled() -> list[dict[str, Any]]:
        return [r for r in stack.api("GET", f"/dags/{DAG}/dagRuns")["dag_runs"]
                if r.get("run_type") == "backfill"]

    deadline = datetime.now(UTC) + timedelta(minutes=10)
    while not (len(backfilled()) == 2 and all(r["state"] in ("success", "failed")
                                              for r in backfilled())):
        assert datetime.now(UTC) < deadline, backfilled()
        page.wait_for_timeout(3000)
    runs = {datetime.fromisoformat(r["data_interval_start"].replace("Z", "+00:00")): r
            for r in backfilled()}
    assert sorted(runs) == [h[0] for h in hours]
    for (start, end), rows in zip(hours, (80, 5), strict=True):
        run = runs[start]
        assert run["state"] == "success", stack.tasks(run["dag_run_id"])
        said = read_decision(page, stack, DAG, run["dag_run_id"])
        # The run id names the hour it ran after; the decision names the hour it judged.
        assert said.startswith(f"window {start.isoformat()} → {shown_end(start, end)} "
                               f"({rows} rows); "), said
    assert "; no drift: " in read_decision(page, stack, DAG, runs[hours[0][0]]["dag_run_id"])
    assert "; insufficient data: 5 rows" in read_decision(
        page, stack, DAG, runs[hours[1][0]]["dag_run_id"])


def test_the_model_version_links_its_html_report_in_mlflow(page: Any, stack: Stack) -> None:
    """Finding 5: the evaluation report, an .html artifact MLflow renders, one click from
    the retrained version (the weekly run above made it)."""
    found = httpx.get(f"{stack.mlflow}/ajax-api/2.0/mlflow/model-versions/search",
                      params={"filter": f"name='{MODEL}'"}, timeout=30).json()
    versions = sorted(int(v["version"]) for v in found["model_versions"])
    assert versions[-1] >= 2, f"no retrained version yet: {versions}"
    version = versions[-1]
    page.goto(f"{stack.mlflow}/#/models/{MODEL}/versions/{version}")
    page.get_by_text("evaluation_report").wait_for()
    assert page.get_by_text(re.compile(r"^runs:/\w+/reports/evaluation\.html$")).count() == 1
    page.get_by_role("link", name=re.compile(r"^retrain-")).click()
    page.get_by_role("tab", name="Artifacts").click()
    page.get_by_text("reports", exact=True).click()
    page.get_by_text("evaluation.html", exact=True).click()
    page.wait_for_function("() => document.querySelectorAll('iframe').length > 0")
    frame = page.frame_locator("iframe").first
    frame.get_by_text(f"Retrain evaluation: {MODEL}").wait_for()
    assert "Challenger and champion on the same rows" in frame.locator("body").inner_text()
    page.get_by_text("validation.html", exact=True).click()
    page.frame_locator("iframe").first.get_by_text(re.compile("Data validation")).wait_for()


def test_try_it_out_in_the_docs_answers_200_for_every_example(page: Any,
                                                              stack: Stack) -> None:
    """Findings 6 and 7: /docs renders from the server alone, and each named example of
    POST /predict, sent by "Try it out", is answered 200."""
    outside: list[str] = []
    page.on("request", lambda r: None if r.url.startswith(stack.server) or
            r.url.startswith("data:") else outside.append(r.url))
    page.goto(stack.server + "/docs")
    operation = page.locator("#operations-predict-predict_predict_post")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    examples = operation.locator("select.examples-select__select, .examples-select select")
    names = examples.first.locator("option").all_inner_texts()
    assert len(names) == 3, names  # records, features, instances
    for name in names:
        examples.first.select_option(label=name)
        operation.get_by_role("button", name="Execute").click()
        status = operation.locator(".live-responses-table .response-col_status").last
        status.filter(has_text=re.compile(r"^\d{3}$")).wait_for()
        assert status.inner_text().strip() == "200", f"example {name!r}"
        operation.get_by_role("button", name="Clear").click()
    assert outside == [], f"/docs fetched from elsewhere: {outside}"



def test_the_manual_rollback_form_needs_a_reason_and_the_run_says_what_it_did(
        page: Any, stack: Stack) -> None:
    """The form opens red until a reason is given (it is recorded on the version); then the
    rollback runs the CLI where retrains run and its outcome says what happened. Whether
    there is a `previous` depends on what the weekly run's gate decided: both answers are
    checked against the registry."""
    login(page, stack)
    dialog = open_trigger_dialog(page, stack, MANUAL)
    trigger = dialog.get_by_role("button", name="Trigger", exact=True)
    assert dialog.get_by_text("This field is required").is_visible()
    assert not trigger.is_enabled(), "the form accepted an empty reason"
    dialog.locator("#element_reason").fill("browser test: roll back")
    assert trigger.is_enabled()
    trigger.click()
    page.wait_for_url(re.compile(rf"/dags/{MANUAL}/runs/[^/]+$"))
    run_id = unquote(page.url.rsplit("/runs/", 1)[1])
    run = stack.wait_run(run_id, timeout=300, dag=MANUAL)
    said = read_decision(page, stack, MANUAL, run_id, starts="rollback")
    assert said == stack.xcom(run_id, "outcome", MANUAL)
    model = httpx.get(f"{stack.server}/model", timeout=10).json()
    if run["state"] == "success":
        assert said.startswith("rollback: v1 is champion (was v"), said
        assert said.endswith(f"tagged by admin (Airflow run {run_id}): browser test: roll back")
        assert model["version"] == "1"
    else:
        assert said == ("rollback refused: model 'iris-classifier' has no previous version to "
                        "roll back to (champion: v1); nothing changed"), said
        assert stack.tasks(run_id, MANUAL) == {"act": "failed", "outcome": "failed"}
