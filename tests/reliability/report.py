"""Render a reliability run's figures into RELIABILITY.md.

``make reliability`` runs the suite at full size with ``DRIFTLOOP_RELIABILITY_FIGURES`` and a
JUnit report, then calls::

    python -m tests.reliability.report FIGURES.json JUNIT.xml RELIABILITY.md

which replaces the part of RELIABILITY.md between the two ``figures`` markers with what that
run measured: the command, the machine, every test's outcome and duration, and the figures
the tests recorded. The prose around the markers is written by hand and kept.
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

START = "<!-- figures:start (written by `make reliability`; do not edit by hand) -->"
END = "<!-- figures:end -->"


@dataclass(frozen=True)
class Outcome:
    name: str
    outcome: str  # passed | failed | error | skipped
    seconds: float
    message: str


def outcomes(junit: Path) -> list[Outcome]:
    """Every test case of a pytest JUnit XML report, in run order."""
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for kind in ("failure", "error", "skipped"):
            node = case.find(kind)
            if node is not None:
                outcome = {"failure": "failed"}.get(kind, kind)
                message = (node.get("message") or "").splitlines()[0][:160] if node.get(
                    "message") else ""
                break
        module = case.get("classname", "").rsplit(".", 1)[-1]
        out.append(Outcome(f"{module}::{case.get('name')}", outcome,
                           float(case.get("time", 0)), message))
    return out


def _flatten(values: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    rows: list[tuple[str, Any]] = []
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and not all(
                isinstance(v, int | float) for v in value.values()):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def _cell(value: Any) -> str:
    if value in ({}, []):
        return "none"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, list):
        return "<br>".join(_cell(v) for v in value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def render(figures: dict[str, Any], tests: list[Outcome]) -> str:
    machine = figures["machine"]
    counts: dict[str, int] = {}
    for t in tests:
        counts[t.outcome] = counts.get(t.outcome, 0) + 1
    total_s = sum(t.seconds for t in tests)
    lines = [
        START,
        "",
        f"Last run: `{figures['command']}`, scale **{figures['scale']}**, finished "
        f"{figures['finished_at']} on {machine['cpus']} CPUs, Python {machine['python']}, "
        f"{machine['system']}.",
        "",
        f"**{len(tests)} tests: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        + f"**, {total_s / 60:.1f} min of test time.",
        "",
        "| test | outcome | seconds |",
        "|---|---|---:|",
    ]
    for t in tests:
        note = f" ({_cell(t.message)})" if t.message else ""
        lines.append(f"| `{t.name}` | {t.outcome}{note} | {t.seconds:.1f} |")
    for section, values in sorted(figures["sections"].items()):
        lines += ["", f"#### {section}", "", "| figure | value |", "|---|---|"]
        lines += [f"| {name} | {_cell(value)} |" for name, value in _flatten(values)]
    lines += ["", END]
    return "\n".join(lines)


def update(document: str, block: str) -> str:
    """``document`` with its figures block replaced (or appended when it has none)."""
    if START in document and END in document:
        head, rest = document.split(START, 1)
        _, tail = rest.split(END, 1)
        return head + block + tail
    return document.rstrip("\n") + "\n\n" + block + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m tests.reliability.report FIGURES.json JUNIT.xml "
              "RELIABILITY.md", file=sys.stderr)
        return 2
    figures_path, junit_path, target = (Path(a) for a in argv)
    for path in (figures_path, junit_path):
        if not path.is_file():
            print(f"error: {path} does not exist: run the suite first (make reliability)",
                  file=sys.stderr)
            return 1
    tests = outcomes(junit_path)
    block = render(json.loads(figures_path.read_text()), tests)
    target.write_text(update(target.read_text() if target.exists() else "", block))
    bad = [t for t in tests if t.outcome in ("failed", "error")]
    print(f"{target}: {len(tests)} tests, {len(bad)} failed; figures of "
          f"{figures_path} written")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
