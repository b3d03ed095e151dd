"""Unattended first boot from Xen Orchestra's deploy keys, and ``podium-appliance`` at the console.

Real nginx, the real server started by first boot, the XenStore keys from the file stand-in.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import stat
import urllib.error
import urllib.request

import aiohttp
import pytest

from ..applianceproc import Stack, first_boot

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ADMIN = {"email": "deploy@example.com", "password": "written by xo deploy"}


async def _sign_in(stack: Stack, email: str, password: str) -> dict:
    """Sign in through nginx; the answer (result or error)."""
    (reply,) = await stack.calls(("session.signIn", {"email": email, "password": password}))
    return reply


@pytest.fixture
def unattended(tmp_path):
    keys = {
        "admin-account": json.dumps(ADMIN),
        "ip": "192.0.2.10", "netmask": "255.255.255.0", "gateway": "192.0.2.1", "dns": "192.0.2.53",
        "ntp": "ntp.example.com",
    }  # fmt: skip
    stack = first_boot(tmp_path, deploy=keys)
    stack.wait_proxied()
    yield stack
    stack.stop()


async def test_appliance_unattended_first_boot_ends_with_a_working_admin_and_keys_erased(unattended):
    stack = unattended
    assert (
        "Podium is set up: sign in at" in stack.firstboot_output and ADMIN["email"] in stack.firstboot_output
    )
    assert ADMIN["password"] not in stack.firstboot_output
    assert list((stack.layout.xenstore_standin / "vm-data").iterdir()) == []  # erased
    assert stack.layout.setup_complete.exists() and not stack.layout.setup_code.exists()
    assert "Address=192.0.2.10/24" in stack.layout.network_file.read_text()
    assert "NTP=ntp.example.com" in stack.layout.timesyncd_conf.read_text()
    config = stack.layout.server_toml.read_text()
    assert ADMIN["password"] not in config and "$argon2id$" in config
    assert stat.S_IMODE(stack.layout.server_toml.stat().st_mode) == 0o640
    reply = await _sign_in(stack, ADMIN["email"], ADMIN["password"])
    assert reply["result"]["permission"] == "admin"
    # The wizard is not reachable: nginx sends its pages home.
    request = urllib.request.Request(stack.url + "/setup/", method="GET")
    ctx = ssl._create_unverified_context()

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect, urllib.request.HTTPSHandler(context=ctx))
    with pytest.raises(urllib.error.HTTPError) as e:
        opener.open(request, timeout=10)
    assert e.value.code == 303 and e.value.headers["Location"] == "/"
    e.value.close()
    # A second boot changes nothing and shows the address.
    again = stack.appliance("firstboot")
    assert again.returncode == 0 and "Podium: " in again.stdout and "setup code" not in again.stdout


async def test_appliance_console_commands(unattended):
    stack = unattended
    check = stack.appliance("check")
    rows = re.findall(r"^(OK|WARN|FAIL)\s+(.+?)\s{2,}", check.stdout, re.M)
    found = {name: status for status, name in rows}
    assert check.returncode == 0, check.stdout + check.stderr
    assert found["service nginx.service"] == "OK" and found["service podium-server.service"] == "OK"
    assert found["certificate"] == "OK" and found["disk space"] in ("OK", "WARN")
    assert found["pools"] == "WARN" and "no pool added yet" in check.stdout

    # The way back in from the console: a new password for the admin created at setup.
    reset = stack.appliance("reset-admin-password")
    assert reset.returncode == 0, reset.stderr
    new = reset.stdout.strip().rsplit(" ", 1)[1]
    assert (await _sign_in(stack, ADMIN["email"], new))["result"]["email"] == ADMIN["email"]
    assert "error" in await _sign_in(stack, ADMIN["email"], ADMIN["password"])
    unknown = stack.appliance("reset-admin-password", "nobody@example.com")
    assert (
        unknown.returncode == 1 and unknown.stderr.strip() == "podium-appliance: no user nobody@example.com"
    )

    # Network from the console: applied at once, bad input named.
    assert stack.appliance("network", "dhcp").returncode == 0
    assert stack.appliance("network", "show").stdout.strip() == "DHCP"
    bad = stack.appliance("network", "static", "192.0.2.20/24", "--gateway", "198.51.100.1")
    assert bad.returncode == 1 and "gateway: 198.51.100.1 is not in the network 192.0.2.0/24" in bad.stderr
    ok = stack.appliance(
        "network", "static", "192.0.2.20", "--netmask", "255.255.255.0", "--dns", "192.0.2.53"
    )
    assert ok.returncode == 0 and stack.appliance("network", "show").stdout.startswith("static 192.0.2.20/24")
    assert stack.commands_run().count("network_reconfigure eth0") == 3  # deploy, dhcp, static

    # Once set up there is no code any more; the server stopped makes check fail loudly.
    code = stack.appliance("setup-code")
    assert code.returncode == 1 and "setup is complete" in code.stderr
    stack.stop()
    down = stack.appliance("check")
    assert down.returncode == 1 and "FAIL  service podium-server.service" in down.stdout


def test_appliance_bad_deploy_keys_fall_back_to_the_wizard(tmp_path):
    stack = first_boot(tmp_path, deploy={"admin-account": "{not json, password=hunter2"})
    try:
        out = stack.firstboot_output
        assert "vm-data/admin-account: expected JSON" in out and "hunter2" not in out
        assert re.search(r"Podium setup code: [A-Z0-9]{4}-[A-Z0-9]{4}-[A-Z0-9]{4}", out)
        assert not stack.layout.setup_complete.exists() and not stack.layout.server_toml.exists()
        assert list((stack.layout.xenstore_standin / "vm-data").iterdir()) == []
        old = stack.layout.setup_code.read_text().strip()
        renewed = stack.appliance("setup-code", "--new")
        assert renewed.returncode == 0 and old not in renewed.stdout
        assert stack.layout.setup_code.read_text().strip() in stack.layout.issue.read_text()
    finally:
        stack.stop()


def test_appliance_a_failing_first_boot_step_still_shows_the_way_in(tmp_path):
    keys = {"admin-account": json.dumps(ADMIN), "ip": "192.0.2.10", "netmask": "24"}
    stack = first_boot(
        tmp_path, deploy=keys, commands={"network_apply": ["sh", "-c", "echo no networkd >&2; exit 1"]}
    )
    try:
        out = stack.firstboot_output
        assert (
            "Podium: the deployed network settings failed: applying the network configuration: no networkd"
            in out
        )
        assert "Podium is set up" in out  # the rest went on: the admin from the keys is there
        assert list((stack.layout.xenstore_standin / "vm-data").iterdir()) == []
    finally:
        stack.stop()


async def test_appliance_a_new_setup_code_ends_the_sessions_of_the_old_one(tmp_path):
    stack = first_boot(tmp_path)
    try:
        stack.start_wizard()
        code = stack.layout.setup_code.read_text().strip()
        jar = aiohttp.CookieJar(unsafe=True)
        async with aiohttp.ClientSession(cookie_jar=jar) as http:
            base = f"http://{stack.layout.settings().wizard_listen}"
            async with http.post(base + "/setup/code", data={"code": code}, allow_redirects=False) as r:
                assert r.status == 303 and r.headers["Location"] == "/setup/admin"
            async with http.get(base + "/setup/admin", allow_redirects=False) as r:
                assert r.status == 200
            assert (await asyncio.to_thread(stack.appliance, "setup-code", "--new")).returncode == 0
            async with http.get(base + "/setup/admin", allow_redirects=False) as r:
                assert (
                    r.status == 303 and r.headers["Location"] == "/setup/"
                )  # the old code's session is over
    finally:
        stack.stop()
