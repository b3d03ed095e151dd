"""The web UI's updates page in real Chromium, on an appliance root with real releases (bundles of this
tree, each with its own venv), the updater service and the server run from ``opt/podium/current``.

An admin uploads a bundle, reads what it is, and upgrades while the page shows the progress and rides out
the server's restart; a tampered bundle is refused and changes nothing; the page checks a channel on an
update server, shows the release notes and upgrades from it; then rolls back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from ..harness.browser import screenshot
from ..harness.releaseproc import ADMIN, Appliance, make_appliance
from ..harness.updateproc import BundleFactory, serve_updates

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]

OLD, NEW, NEWEST = "1.0.0", "1.1.0", "1.2.0"
NEW_NOTES = "Podium 1.1.0: faster consoles."
UPGRADE_TIMEOUT = 180_000  # ms: a venv from the bundle's wheels, a restart and a health check


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> BundleFactory:
    return BundleFactory(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def shared(factory: BundleFactory, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Appliance]:
    """The appliance the tests share: the old release installed and set up. Each test starts from a copy
    of its files (``box``, ``upgraded``), not from where the test before left it."""
    factory.ensure_key()
    appliance = make_appliance(tmp_path_factory.mktemp("appliance"), factory.keyring_path)
    done = appliance.update("apply", "--bundle", str(factory(OLD)))
    assert done.returncode == 0, done.stderr
    appliance.set_up()
    try:
        yield appliance
    finally:
        appliance.stop()


@pytest.fixture(scope="module")
def first_install(shared: Appliance, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared appliance's files as its first install left them."""
    copy = tmp_path_factory.mktemp("first-install") / "root"
    shared.keep(copy)
    return copy


@pytest.fixture(scope="module")
def upgraded_copy(
    shared: Appliance, first_install: Path, factory: BundleFactory, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the shared appliance's files once upgraded to the new release (from the console)."""
    shared.restore(first_install)
    done = shared.update("apply", "--bundle", str(factory(NEW, notes=NEW_NOTES)))
    assert done.returncode == 0, done.stderr
    copy = tmp_path_factory.mktemp("upgraded") / "root"
    shared.keep(copy)
    return copy


def with_service(appliance: Appliance, copy: Path) -> Iterator[Appliance]:
    """The appliance as ``copy`` has it, with its updater service, for one test."""
    appliance.restore(copy)
    appliance.start_service()
    try:
        yield appliance
    finally:
        appliance.stop_service()


@pytest.fixture
def box(shared: Appliance, first_install: Path) -> Iterator[Appliance]:
    """The appliance running the old release, never upgraded, set up, with its updater service."""
    yield from with_service(shared, first_install)


@pytest.fixture
def upgraded(shared: Appliance, upgraded_copy: Path) -> Iterator[Appliance]:
    """The appliance upgraded from the old release to the new one, with its updater service."""
    yield from with_service(shared, upgraded_copy)


def open_updates(page: Page, box: Appliance) -> None:
    page.goto(f"http://{box.server_listen}/#/settings/updates")
    page.fill("#email", ADMIN[0])
    page.fill("#password", ADMIN[1])
    page.click("#signin button[type=submit]")
    expect(page.locator("#who")).to_contain_text(ADMIN[0])


def test_upload_a_bundle_and_upgrade_with_progress_through_the_restart(
    box: Appliance, factory: BundleFactory, page: Page, tmp_path: Path
) -> None:
    new = factory(NEW, notes=NEW_NOTES)
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
    upgraded: Appliance, factory: BundleFactory, page: Page, tmp_path: Path
) -> None:
    box = upgraded
    newest = factory(NEWEST, notes="Podium 1.2.0\n\n- charts for SRs\n- quieter logs")
    out = tmp_path / "updates"
    factory.channel([factory(OLD), newest], "stable", out)
    with serve_updates(out) as url:
        kept = [
            line for line in box.layout.updates_toml.read_text().splitlines() if not line.startswith("url ")
        ]
        box.layout.updates_toml.write_text("\n".join([*kept, f'url = "{url}"']) + "\n")
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
