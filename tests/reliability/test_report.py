"""The RELIABILITY.md writer: it reports what the run did, failures included, and keeps the
hand-written prose around its block."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability import report

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3">
<testcase classname="tests.reliability.test_rollout_load" name="test_reloads_under_load"
          time="61.25"/>
<testcase classname="tests.reliability.test_crash_recovery" name="test_kill[postgresql]"
          time="0.01"><skipped message="DRIFTLOOP_TEST_PG_URL is not set">skip</skipped>
</testcase>
<testcase classname="tests.reliability.test_security" name="test_limits" time="2.5">
<failure message="assert 500 == 413&#10;more detail">trace</failure></testcase>
</testsuite></testsuites>
"""

FIGURES = {"scale": "full", "command": "make reliability",
           "finished_at": "2026-11-23T01:00:00+00:00",
           "machine": {"cpus": 2, "python": "3.11.2", "system": "Linux x86_64"},
           "sections": {"rollout_load": {"requests": 10000, "failed_requests": 0,
                                         "answers_by_version": {"1": 4000, "2": 6000},
                                         "reloads": [{"version": "2", "status": 200}]}}}

PROSE = "# Reliability\n\nHand-written claims.\n\n{block}\n\n## After\n\nMore prose.\n"


@pytest.fixture
def run(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "f.json").write_text(json.dumps(FIGURES))
    (tmp_path / "j.xml").write_text(JUNIT)
    return tmp_path / "f.json", tmp_path / "j.xml"


def test_outcomes_read_every_case_with_its_result(run: tuple[Path, Path]) -> None:
    tests = report.outcomes(run[1])
    assert [(t.name, t.outcome) for t in tests] == [
        ("test_rollout_load::test_reloads_under_load", "passed"),
        ("test_crash_recovery::test_kill[postgresql]", "skipped"),
        ("test_security::test_limits", "failed")]
    assert tests[1].message == "DRIFTLOOP_TEST_PG_URL is not set"
    assert tests[2].message == "assert 500 == 413"  # first line only


def test_the_block_replaces_the_last_one_and_keeps_the_prose(
        run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "RELIABILITY.md"
    old = f"{report.START}\n| stale | figures |\n{report.END}"
    target.write_text(PROSE.format(block=old))
    assert report.main([str(run[0]), str(run[1]), str(target)]) == 1  # a test failed
    text = target.read_text()
    assert "stale" not in text
    assert text.startswith("# Reliability\n\nHand-written claims.\n\n" + report.START)
    assert text.endswith(report.END + "\n\n## After\n\nMore prose.\n")
    assert "**3 tests: 1 failed, 1 passed, 1 skipped**" in text
    assert "| `test_crash_recovery::test_kill[postgresql]` | skipped (DRIFTLOOP_TEST_PG_URL" \
        in text
    assert "| requests | 10000 |" in text
    assert "| answers_by_version | 1: 4000, 2: 6000 |" in text
    assert "| reloads | version: 2, status: 200 |" in text
    assert "1 failed" in capsys.readouterr().out


def test_a_missing_input_says_to_run_the_suite(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "RELIABILITY.md"
    target.write_text("keep me")
    code = report.main([str(tmp_path / "none.json"), str(tmp_path / "none.xml"),
                        str(target)])
    assert code == 1
    assert "run the suite first (make reliability)" in capsys.readouterr().err
    assert target.read_text() == "keep me"
