"""Real Chromium (Debian's) driven by Playwright, no browser download; screenshots under test-artifacts/."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from ..harness.serverproc import Api, Server, connected, start_server
from ..harness.simproc import Sim

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

# Without these, Chromium keeps trying to reach Google's services, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """Debian's Chromium, which `make setup` installs."""
    path = shutil.which("chromium")
    assert path, "Chromium is missing: `make setup` installs Debian's chromium package"
    return path


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


def on_api(server: Server, work: Callable[[Api], Awaitable[Any]]) -> Any:
    """Run ``work`` with an admin signed in on the API (in a thread: Playwright holds this one's loop)."""

    async def run() -> Any:
        async with Api(server.url) as api:
            await api.sign_in()
            return await work(api)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


@pytest.fixture
def server(tmp_path: Path, sim: Sim) -> Iterator[Server]:
    """The real server on loopback, connected to a fresh simulator's pool."""
    srv = start_server(tmp_path / "data")
    try:
        on_api(srv, lambda api: connected(api, sim))
        yield srv
    finally:
        srv.stop()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
