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


def _makefile_list(name: str) -> list[str]:
    """The words of a ``NAME := ...`` list in the Makefile (backslash continuations)."""
    text = (PROJECT_ROOT / "Makefile").read_text().replace("\\\n", " ")
    (line,) = [ln for ln in text.splitlines() if ln.startswith(f"{name} :=")]
    return line.partition(":=")[2].split()


def test_every_test_left_out_of_make_test_runs_in_make_reliability() -> None:
    """`make test` deselects the `full` marker; each such test must be in a file that
    `make reliability` runs, or it would run nowhere."""
    import ast

    reliability = _makefile_list("RELIABILITY_TESTS")
    full: list[str] = []
    for path in (PROJECT_ROOT / "tests").rglob("test_*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and any(
                    ast.unparse(d) == "pytest.mark.full" for d in node.decorator_list):
                full.append(f"{path.relative_to(PROJECT_ROOT)}::{node.name}")
    assert full, "no test is marked full: drop the marker and this check"
    nowhere = [t for t in full if not any(t == r or t.startswith(r.rstrip("/") + "/") or
                                          t.split("::")[0] == r for r in reliability)]
    assert nowhere == [], f"marked full but not in RELIABILITY_TESTS: {nowhere}"
