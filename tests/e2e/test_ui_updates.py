"""The web UI's updates page in real Chromium, on an appliance root with real releases (bundles of this
tree, each with its own venv), the updater service and the server run from ``opt/podium/current``.

An admin uploads a bundle, reads what it is, and upgrades while the page shows the progress and rides out
the server's restart; a tampered bundle is refused and changes nothing; the page checks a channel on an
update server, shows the release notes and upgrades from it; then rolls back.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..harness.releaseproc import ADMIN, Appliance, make_appliance
from ..harness.serverproc import free_port
from ..harness.updateproc import BundleFactory
from .conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

OLD, NEW, NEWEST = "1.0.0", "1.1.0", "1.2.0"
UPGRADE_TIMEOUT = 180_000  # ms: a venv from the bundle's wheels, a restart and a health check


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> BundleFactory:
    return BundleFactory(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def box(factory: BundleFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    """An appliance running the old release, set up, with its updater service."""
    factory.ensure_key()
    appliance = make_appliance(tmp_path_factory.mktemp("appliance"), factory.keyring_path)
    done = appliance.update("apply", "--bundle", str(factory(OLD)))
    assert done.returncode == 0, done.stderr
    appliance.set_up()
    appliance.start_service()
    try:
        yield appliance
    finally:
        appliance.stop()


def wait_listening(port: int) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"nothing listens on port {port}"
            time.sleep(0.05)


def open_updates(page: Page, box: Appliance) -> None:
    page.goto(f"http://{box.server_listen}/#/settings/updates")
    page.fill("#email", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("#signin button[type=submit]")
    expect(page.locator("#who")).to_contain_text(ADMIN[0])


def test_upload_a_bundle_and_upgrade_with_progress_through_the_restart(
    box: Appliance, factory: BundleFactory, page: Page, tmp_path: Path
) -> None:
    new = factory(NEW, notes="Podium 1.1.0: faster consoles.")
    open_updates(page, box)
    expect(page.locator("#update-current")).to_have_text(OLD)
    expect(page.locator("#update-rollback")).to_be_disabled()  # nothing to go back to yet

    # No update server is configured: checking says so.
    page.click("#update-check")
    expect(page.locator(".toast.error")).to_contain_text("no update server is configured")
    page.locator(".toast.error button").click()

    # A bundle changed after signing: refused on upload, nothing installed.
    data = bytearray(new.read_bytes())
    data[len(data) // 2] ^= 0xFF
    tampered = tmp_path / f"podium-{NEW}.bundle"
    tampered.write_bytes(bytes(data))
    page.set_input_files("#bundle-file", tampered)
    page.click("#upload-bundle button[type=submit]")
    expect(page.locator(".toast.error")).to_contain_text("payload")
    assert box.current() == OLD
    page.locator(".toast.error button").click()

    page.set_input_files("#bundle-file", new)
    page.click("#upload-bundle button[type=submit]")
    dialog = page.locator("dialog")
    expect(dialog).to_contain_text(f"Install {NEW}")
    expect(dialog).to_contain_text("faster consoles")
    expect(dialog).to_contain_text("stable channel")
    dialog.get_by_role("button", name=f"Upgrade to {NEW}").click()
    expect(page.locator("#update-progress")).to_be_visible()
    screenshot(page, "ui-update-progress")
    # the server restarts into the new release: the page says it lost the connection, then comes back by itself
    expect(page.locator("#offline")).to_be_visible(timeout=UPGRADE_TIMEOUT)
    expect(page.locator("#offline")).to_be_hidden(timeout=UPGRADE_TIMEOUT)
    expect(page.locator("#update-current")).to_have_text(NEW, timeout=UPGRADE_TIMEOUT)
    expect(page.locator("#update-progress")).to_be_hidden()
    expect(page.locator("#update-last")).to_contain_text("upgrade")
    expect(page.locator("#update-last")).not_to_have_class("error-text")
    assert box.current() == NEW
    # the page itself is still the old release's: it offers the new one's
    expect(page.locator("#reload")).to_contain_text(f"Podium {NEW} is now running")
    page.click("#reload-button")
    expect(page.locator("#update-current")).to_have_text(NEW)
    expect(page.locator("footer")).to_contain_text(NEW)


def test_check_a_channel_read_the_notes_upgrade_then_roll_back(
    box: Appliance, factory: BundleFactory, page: Page, tmp_path: Path
) -> None:
    if box.current() != NEW:
        pytest.skip("needs the upload test first")
    newest = factory(NEWEST, notes="Podium 1.2.0\n\n- charts for SRs\n- quieter logs")
    out = tmp_path / "updates"
    factory.channel([factory(OLD), newest], "stable", out)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port),
                               "--directory", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    config = box.layout.updates_toml.read_text()
    try:
        kept = [line for line in config.splitlines() if not line.startswith("url ")]
        box.layout.updates_toml.write_text("\n".join([*kept, f'url = "http://127.0.0.1:{port}/"']) + "\n")
        wait_listening(port)
        open_updates(page, box)
        expect(page.locator("#update-current")).to_have_text(NEW)
        page.click("#update-check")
        expect(page.locator(".toast")).to_contain_text(f"{NEWEST} is available")
        expect(page.locator("#update-offer")).to_contain_text(f"Release {NEWEST} is available")
        expect(page.locator("#update-offer pre")).to_contain_text("- charts for SRs")
        screenshot(page, "ui-update-available")
        page.click("#update-upgrade")
        page.locator("dialog").get_by_role("button", name="Upgrade").click()
        expect(page.locator("#update-current")).to_have_text(NEWEST, timeout=UPGRADE_TIMEOUT)
        expect(page.locator("#update-offer")).to_be_empty()

        page.click("#update-rollback")
        page.locator("dialog").get_by_role("button", name="Roll back").click()
        expect(page.locator("#update-current")).to_have_text(NEW, timeout=UPGRADE_TIMEOUT)
        expect(page.locator("#update-last")).to_contain_text("rollback")
        assert box.current() == NEW
    finally:
        box.layout.updates_toml.write_text(config)
        server.terminate()
        server.wait()
