"""The figures a reliability run measured (counts, failures, durations, lost rows...).

Tests call ``figures.record(section, **values)``; when ``DRIFTLOOP_RELIABILITY_FIGURES``
names a file (``make reliability`` sets it), the session writes them there as JSON with the
scale, the command and the machine, and ``python -m tests.reliability.report`` renders that
file into RELIABILITY.md.
"""

from __future__ import annotations

import json
import os
import platform
import shlex
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FIGURES_ENV = "DRIFTLOOP_RELIABILITY_FIGURES"
COMMAND_ENV = "DRIFTLOOP_RELIABILITY_COMMAND"


class Figures:
    def __init__(self, scale: str) -> None:
        self.scale = scale
        self.sections: dict[str, dict[str, Any]] = {}

    def record(self, section: str, **values: Any) -> None:
        self.sections.setdefault(section, {}).update(values)

    def document(self) -> dict[str, Any]:
        return {
            "scale": self.scale,
            "command": os.environ.get(COMMAND_ENV) or shlex.join(sys.argv),
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                        "system": f"{platform.system()} {platform.machine()}"},
            "sections": self.sections,
        }

    def write(self) -> Path | None:
        target = os.environ.get(FIGURES_ENV)
        if not target or not self.sections:
            return None
        path = Path(target)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.document(), indent=2, sort_keys=True) + "\n")
        return path
