"""The web UI's fixtures: real Chromium (Debian's) driven by Playwright, no browser download, and the real
server connected to a fresh simulator (their helpers are in ``tests/harness/browser.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..harness.browser import CHROMIUM_ARGS, chromium_path, on_api
from ..harness.serverproc import Server, connected, start_server
from ..harness.simproc import Sim


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """A headless Chromium for the module's tests."""
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser context (no cookies) that accepts the appliance's self-signed certificate."""
    context = browser.new_context(ignore_https_errors=True, viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)
    yield page
    context.close()


@pytest.fixture
def server(tmp_path: Path, sim: Sim) -> Iterator[Server]:
    """The real server on loopback, connected to a fresh simulator's pool."""
    srv = start_server(tmp_path / "data")
    try:
        on_api(srv, lambda api: connected(api, sim))
        yield srv
    finally:
        srv.stop()
