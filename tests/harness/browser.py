"""The web UI's tests' helpers: Debian's Chromium and how to start it here, the admin's API beside the
browser, signing in, and screenshots under test-artifacts/ (the fixtures are in ``tests/e2e/conftest.py``)."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from .serverproc import ADMIN_EMAIL, ADMIN_PASSWORD, Api, Server

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


def on_api(server: Server, work: Callable[[Api], Awaitable[Any]]) -> Any:
    """Run ``work`` with an admin signed in on the API (in a thread: Playwright holds this one's loop)."""

    async def run() -> Any:
        async with Api(server.url) as api:
            await api.sign_in()
            return await work(api)

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot as test-artifacts/<name>.png."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def sign_in(page: Page, server: Server, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> None:
    page.goto(server.url + "/")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("#signin button[type=submit]")
    expect(page.locator("#who")).to_contain_text(email)


def vms(server: Server) -> list[dict[str, Any]]:
    objects = on_api(server, lambda api: api.call("xo.getAllObjects", {"filter": {"type": "VM"}}))
    return sorted(objects.values(), key=lambda vm: vm["name_label"])


def halt(server: Server, count: int) -> list[dict[str, Any]]:
    """Power off ``count`` VMs (the bundled pool's all run) and wait until the server shows them halted."""

    async def work(api: Api) -> list[dict[str, Any]]:
        objects = await api.call("xo.getAllObjects", {"filter": {"type": "VM"}})
        chosen = sorted(objects.values(), key=lambda vm: vm["name_label"])[:count]
        for vm in chosen:
            await api.call("vm.stop", {"id": vm["id"], "force": True})
        ids = {vm["id"] for vm in chosen}
        for _ in range(200):
            objects = await api.call("xo.getAllObjects", {"filter": {"type": "VM"}})
            if all(objects[i]["power_state"] == "Halted" for i in ids):
                return [objects[i] for i in sorted(ids, key=lambda i: objects[i]["name_label"])]
            await asyncio.sleep(0.05)
        raise AssertionError("the VMs never showed halted")

    return on_api(server, work)  # type: ignore[no-any-return]
