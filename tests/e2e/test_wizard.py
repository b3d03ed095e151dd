"""The first-boot wizard walked through in real Chromium, behind real nginx, in front of the real server.

One person's way, with every mistake the issue names on the way: a wrong setup code, a weak password, an
unconfirmed network change (which reverts), a mismatched certificate and key, a certificate for another
name (installed, its warnings shown), an unreachable pool master, a pool member's address (the master named),
then the right answers; the server starts with that admin, the wizard locks for good.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import Page, expect

from podium_appliance.box import tls_check, tls_install

from ..harness.applianceproc import Stack, first_boot
from ..harness.browser import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(300)]

ADMIN = "ops@example.com"
PASSWORD = "tangerine orbit seventy lanterns"


@pytest.fixture
def stack(tmp_path):
    stack = first_boot(tmp_path, confirm_seconds=2.0)
    try:
        stack.start_wizard()
        yield stack
    finally:
        stack.stop()


def _submit(page: Page, button: str = "button[type=submit]") -> None:
    with page.expect_navigation():
        page.locator(button).first.click()


def _error(page: Page) -> str:
    return page.locator("#error").inner_text()


def test_wizard_walkthrough_with_every_mistake(stack: Stack, tls_sim, page: Page):
    code = re.search(r"Podium setup code: (\S+)", stack.firstboot_output).group(1)
    assert stack.appliance("setup-code").stdout.count(code) == 1  # the console command shows it again
    assert f"Podium setup code: {code}" in stack.layout.issue.read_text()

    page.goto(stack.nginx.http_url + "/")  # plain HTTP: redirected to HTTPS, then to the wizard
    assert page.url == stack.url + "/setup/"
    screenshot(page, "wizard-1-code")
    page.fill("#code", "AAAA-BBBB-CCCC")
    _submit(page)
    assert "not the setup code" in _error(page)
    page.fill("#code", code.lower().replace("-", " "))
    _submit(page)
    assert page.url.endswith("/setup/admin")

    # Administrator: a weak password is refused with advice, then a strong one.
    page.fill("#email", ADMIN)
    page.fill("#password", "Password123!")
    page.fill("#password2", "Password123!")
    _submit(page)
    assert "too easy to guess" in _error(page)
    assert page.input_value("#email") == ADMIN
    page.fill("#password", PASSWORD)
    page.fill("#password2", PASSWORD)
    _submit(page)
    assert page.url.endswith("/setup/network")

    # Network: a static address applied, not confirmed in time, so the previous settings come back.
    _static_address(page)
    link = page.locator("#confirm").get_attribute("href")
    assert link.startswith(f"https://192.0.2.10:{stack.nginx.https_port}/setup/network/confirm?token=")
    assert "Address=192.0.2.10/24" in stack.layout.network_file.read_text()
    screenshot(page, "wizard-3-network-pending")
    page.wait_for_timeout(3500)
    page.goto(stack.url + "/setup/network")
    expect(page.locator(".notice")).to_contain_text("were not confirmed within 2 s")
    assert not stack.layout.network_file.exists()  # DHCP again, as before
    # The same change, confirmed this time from "its new address" (here the same nginx on loopback).
    _static_address(page)
    link = page.locator("#confirm").get_attribute("href")
    page.goto(link.replace("192.0.2.10", "127.0.0.1"))
    assert page.url.endswith("/setup/hostname")
    assert "Address=192.0.2.10/24" in stack.layout.network_file.read_text()
    assert not stack.layout.network_pending.exists()

    page.fill("#hostname", "podium-test")
    _submit(page)
    assert stack.layout.hostname.read_text() == "podium-test\n"

    # Time: no NTP server answers here; the wizard says so and continues only when told to.
    page.fill("#zone", "Europe/Paris")
    page.fill("#ntp", "127.0.0.1")
    _submit(page)
    assert "No NTP server answered" in _error(page)
    assert "127.0.0.1: no answer" in page.locator(".warning").first.inner_text()
    page.check("input[name=accept_unreachable]")
    _submit(page)
    assert page.url.endswith("/setup/tls")
    assert stack.layout.timezone.read_text() == "Europe/Paris\n"

    # Certificate: a certificate with another certificate's key is refused, nothing changes.
    before = stack.layout.tls_cert.read_bytes()
    cert_a, _ = tls_install.generate_self_signed("podium-test", ["127.0.0.1"])
    _, key_b = tls_install.generate_self_signed("podium-test", ["127.0.0.1"])
    page.check("input[name=choice][value=upload]")
    page.set_input_files("#cert", files=[{"name": "c.pem", "mimeType": "text/plain", "buffer": cert_a}])
    page.set_input_files("#key", files=[{"name": "k.pem", "mimeType": "text/plain", "buffer": key_b}])
    _submit(page)
    assert "does not belong to the certificate" in _error(page)
    assert stack.layout.tls_cert.read_bytes() == before
    # A usable certificate for another name: installed, and its warnings shown before going on.
    other_cert, other_key = tls_install.generate_self_signed("elsewhere.example.com", ["192.0.2.99"])
    page.check("input[name=choice][value=upload]")
    page.set_input_files("#cert", files=[{"name": "c.pem", "mimeType": "text/plain", "buffer": other_cert}])
    page.set_input_files("#key", files=[{"name": "k.pem", "mimeType": "text/plain", "buffer": other_key}])
    _submit(page)
    assert page.url.endswith("/setup/tls") and stack.layout.tls_cert.read_bytes() == other_cert
    warnings = page.locator(".warning").all_inner_texts()
    assert any("does not name podium-test (it names elsewhere.example.com" in w for w in warnings), warnings
    assert any("self-signed" in w for w in warnings)
    expect(page.locator("#continue")).to_be_visible()
    screenshot(page, "wizard-5-certificate-warnings")
    page.check("input[name=choice][value=generate]")  # on second thoughts, a certificate for this name
    _submit(page)
    assert page.url.endswith("/setup/pool")
    info = tls_check.read_info(stack.layout.tls_cert)
    assert "podium-test" in info.names and stack.layout.tls_cert.read_bytes() != before
    for _ in range(50):  # nginx -s reload returns before the new workers answer
        if stack.nginx.served_fingerprint() == info.fingerprint:
            break
        page.wait_for_timeout(100)
    assert stack.nginx.served_fingerprint() == info.fingerprint

    # Pool: an unreachable master, then the simulator's: its fingerprint shown, confirmed, logged in.
    page.fill("#host", "127.0.0.1:1")
    _submit(page)
    assert "cannot reach 127.0.0.1 on port 1" in _error(page)
    # A member's address: the page names the master, and the fingerprint to compare is the master's.
    page.fill("#host", tls_sim.member().url)
    _submit(page)
    master = tls_sim.master().url.removeprefix("https://")
    expect(page.locator("#member")).to_contain_text(
        f"is a member of a pool, not its master: its master is {master}"
    )
    shown = page.locator("#fingerprint").inner_text().replace(":", "")
    assert shown == tls_sim.fingerprint.replace(":", "").upper()
    screenshot(page, "wizard-6-pool-fingerprint")
    page.fill("#password", "wrong")
    page.check("#confirm")
    _submit(page, "button[value=connect]")
    assert "refused by the pool" in _error(page)
    page.check("#confirm")
    page.fill("#password", tls_sim.password)
    _submit(page, "button[value=connect]")
    assert page.url.endswith("/setup/updates")

    page.check("input[name=channel][value=stable]")
    _submit(page)
    expect(page.locator("dl")).to_contain_text(f"{master} (")  # the pool is added at its master's address
    screenshot(page, "wizard-8-finish")
    _submit(page, "#finish")
    expect(page.locator("[role=status]")).to_contain_text("Setup is complete")
    screenshot(page, "wizard-9-done")

    # The way on is the server's sign-in page, through the same nginx.
    stack.wait_proxied()
    page.click("#signin")
    page.fill("#email", ADMIN)
    page.fill("#password", "not the password")
    page.click("#signin button[type=submit]")
    expect(page.locator("#signin-error")).to_contain_text("invalid credentials")
    page.wait_for_timeout(2100)  # a failed sign-in holds the next attempt for 2 s, as Xen Orchestra
    page.fill("#password", PASSWORD)
    page.click("#signin button[type=submit]")
    expect(page.locator("#who")).to_contain_text(f"{ADMIN} (admin)")
    screenshot(page, "wizard-10-signed-in")

    # Locked for good: the wizard's pages lead home (still signed in: the token cookie), the code is
    # gone, the server has the admin and the pool.
    page.goto(stack.url + "/setup/admin")
    assert page.url == stack.url + "/"
    expect(page.locator("#who")).to_contain_text(ADMIN)
    assert not stack.layout.setup_code.exists() and stack.layout.setup_complete.exists()
    assert "setup code" not in stack.layout.issue.read_text()
    assert "password" not in stack.layout.server_toml.read_text().replace("password_hash", "")
    assert PASSWORD not in stack.server_log() and PASSWORD not in (stack.root / "wizard.log").read_text()
    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's event loop
        signed_in, listed = pool.submit(
            asyncio.run,
            stack.calls(("session.signIn", {"email": ADMIN, "password": PASSWORD}), ("server.getAll", {})),
        ).result()
    assert "error" not in signed_in, signed_in
    servers = listed["result"]
    assert servers[0]["status"] == "connected" and servers[0]["fingerprint"]
    hsts = _headers(stack, "/api/health")
    assert "max-age" in hsts.get("strict-transport-security", "")
    assert stack.appliance("setup-code").returncode == 1
    stack.wizard.wait(timeout=10)  # the wizard stops by itself once setup is complete
    assert stack.wizard.returncode == 0

    # Signing out revokes the token: the next visit asks to sign in again.
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "authenticationToken")
    with page.expect_navigation():
        page.click("#signout")
    expect(page.locator("#signin")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "authenticationToken"]
    with ThreadPoolExecutor(1) as pool:
        (revoked,) = pool.submit(asyncio.run, stack.calls(("session.signIn", {"token": token}))).result()
    assert revoked["error"]["code"] == 3  # the token no longer signs anyone in


def _static_address(page: Page) -> None:
    page.check("input[name=mode][value=static]")
    page.fill("#address", "192.0.2.10")
    page.fill("#netmask", "255.255.255.0")
    page.fill("#gateway", "192.0.2.1")
    page.fill("#dns", "192.0.2.53")
    _submit(page)


def _headers(stack: Stack, path: str) -> dict[str, str]:
    import urllib.request

    ctx = ssl._create_unverified_context()
    with urllib.request.urlopen(stack.url + path, context=ctx, timeout=10) as resp:
        return {k.lower(): v for k, v in resp.headers.items()}
