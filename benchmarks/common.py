"""What every benchmark records: the machine, and free ports."""

from __future__ import annotations

import os
import platform
import socket
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        mem_kb = 0
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024**2, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "load_average_at_start": os.getloadavg()}
