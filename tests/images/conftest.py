"""The built images, run: podman (or docker) on the images `make images` built.

`make test-images` runs these (marker ``images``; `make test` leaves them out). An image that
is not built is a skip here, and a failure in CI, naming `make images`.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from driftloop.settings import PROJECT_ROOT

IMAGES_ENV = PROJECT_ROOT / "docker" / "images.env"
#: The containers.conf scripts/images/engine.sh writes for podman on this kind of machine.
CONTAINERS_CONF = PROJECT_ROOT / ".tools" / "containers" / "containers.conf"


def image_names() -> dict[str, str]:
    names = {}
    for line in IMAGES_ENV.read_text().splitlines():
        if line.startswith("DRIFTLOOP_") and "=" in line:
            key, _, value = line.partition("=")
            names[key.removeprefix("DRIFTLOOP_").removesuffix("_IMAGE").lower()] = value
    return names


def engine() -> str:
    """docker where an engine answers, else podman (as scripts/images/engine.sh picks)."""
    if shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True,
                                                 timeout=30).returncode == 0:
        return "docker"
    if shutil.which("podman"):
        return "podman"
    pytest.skip("no container engine: run `make images` (it installs podman)")
    raise AssertionError


def run(*args: str, check: bool = True, timeout: float = 600,
        **kwargs: Any) -> subprocess.CompletedProcess:
    """The engine with ``args``; output captured as text."""
    env = {**os.environ}
    if CONTAINERS_CONF.is_file():
        env["CONTAINERS_CONF"] = str(CONTAINERS_CONF)
    proc = subprocess.run([engine(), *args], capture_output=True, text=True, env=env,
                          timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError(f"{engine()} {' '.join(args)} exited {proc.returncode}:\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def built(name: str) -> str:
    """The image ``name`` (serving, trainer, airflow) as `make images` tagged it."""
    image = image_names()[name]
    for candidate in (image, f"{image}-standin"):
        if run("image", "inspect", candidate, check=False).returncode == 0:
            return candidate
    pytest.skip(f"image {image} is not built: run `make images`")
    raise AssertionError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def owned_dir(path: Path, uid: int) -> Path:
    """A host folder the container's user may write (the pods' volumes are theirs too)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chown(path, uid, uid if uid != 50000 else 0)
    return path


def wait_ready(url: str, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(f"{url}/ready", timeout=5)
            if answer.status_code == 200:
                return answer.json()
            last = f"{answer.status_code} {answer.text[:200]}"
        except httpx.HTTPError as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.5)
    raise AssertionError(f"{url}/ready did not answer 200 in {timeout:.0f} s (last: {last})")


@pytest.fixture
def container() -> Iterator[Any]:
    """``start(*run_args) -> name``: detached containers, removed at the end (their logs
    printed when the test failed)."""
    names: list[str] = []

    def start(*args: str) -> str:
        name = f"driftloop-test-{len(names)}-{os.getpid()}-{int(time.time() * 1000) % 100000}"
        run("run", "-d", "--name", name, *args)
        names.append(name)
        return name

    yield start
    for name in names:
        logs = run("logs", name, check=False)
        print(f"--- {name} ---\n{logs.stdout[-4000:]}{logs.stderr[-4000:]}")
        run("rm", "-f", "-t", "5", name, check=False)
