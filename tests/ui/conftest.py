"""The browser tier (``make test-ui``): Playwright for Python driving Debian's Chromium against
``make up``. Never ``playwright install``: the browser is the system's ``/usr/bin/chromium``
(``make test-tools`` installs it). A failing test leaves a screenshot of each open page in
``DRIFTLOOP_UI_SCREENSHOTS`` (default ``test-results/ui-screenshots``: outside the local state,
which `make demo` refuses to reuse when it holds anything else).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from driftloop.settings import PROJECT_ROOT
from tests.local_stack import Stack, make_up
from tests.pipelines.conftest import (  # noqa: F401  (a fixture: registered by import)
    champion_template,
)

CHROMIUM = os.environ.get("DRIFTLOOP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]
SCREENSHOTS = Path(os.environ.get("DRIFTLOOP_UI_SCREENSHOTS",
                                  PROJECT_ROOT / "test-results" / "ui-screenshots"))


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists() and shutil.which("chromium") is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: `make test-tools` installs Debian's")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def stack(champion_template: Path,  # noqa: F811
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with make_up(champion_template, tmp_path_factory.mktemp("ui"), password="s3cret") as up:
        yield up


@pytest.fixture
def page(browser: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    yield page
    report = getattr(request.node, "ui_call_report", None)
    if report is not None and report.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.name)
        for i, open_page in enumerate(context.pages):
            path = SCREENSHOTS / f"{name}-{i}.png"
            open_page.screenshot(path=str(path), full_page=True)
            print(f"screenshot of {open_page.url}: {path}")
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.ui_call_report = report  # type: ignore[attr-defined]
