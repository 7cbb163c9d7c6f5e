"""In CI a skip is a failure that names what is missing; locally it stays a skip."""

from __future__ import annotations

import pytest

from driftloop.settings import PROJECT_ROOT

pytest_plugins = ["pytester"]

TESTS = """
import pytest

def test_needs_a_tool():
    pytest.skip("kubectl is not installed")

@pytest.mark.xfail(reason="known bug", strict=True)
def test_known_bug():
    assert False

def test_fine():
    pass
"""


@pytest.mark.parametrize(("ci", "outcomes"), [
    ("true", {"passed": 1, "failed": 1, "xfailed": 1}),
    ("", {"passed": 1, "skipped": 1, "xfailed": 1}),
])
def test_a_skip_fails_only_in_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                 ci: str, outcomes: dict[str, int]) -> None:
    monkeypatch.setenv("CI", ci)
    monkeypatch.setenv("PYTHONPATH", str(PROJECT_ROOT))
    pytester.makeconftest("from tests.conftest import pytest_runtest_makereport  # noqa")
    pytester.makepyfile(test_it=TESTS)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rfs")
    result.assert_outcomes(**outcomes)
    if ci:
        result.stdout.fnmatch_lines(["*CI=true*allows no skip*kubectl is not installed*"])
