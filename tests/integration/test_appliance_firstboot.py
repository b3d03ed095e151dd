"""Unattended first boot from Xen Orchestra's deploy keys, ``podium-appliance`` at the console, a broken
certificate repaired at boot, and the wizard's pool step against the simulator.

Real nginx, the real server started by first boot, the XenStore keys from the file stand-in.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import stat
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from podium_appliance.box import tls_check, tls_install
from podium_appliance.box.network import Network, static_config
from podium_appliance.layout import Layout
from podium_appliance.setup import first_pool
from podium_appliance.setup.wizard import answers_of

from ..harness.applianceproc import Stack, first_boot, tls_forwarder, wizard_client

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
        "ip": "192.0.2.10",
        "netmask": "255.255.255.0",
        "gateway": "192.0.2.1",
        "dns": "192.0.2.53",
        "ntp": "ntp.example.com",
    }
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
    # the first boot starts before the system bus: it waits for it once, before networkctl and the time
    ran = [line.split()[0] for line in (stack.root / "commands.log").read_text().splitlines()]
    assert ran.count("bus_wait") == 1 and ran.index("bus_wait") < ran.index("network_apply"), ran
    assert ran.index("bus_wait") < ran.index("time_apply"), ran
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
    # The wizard's service, started beside the first boot's, waits for it, then finds nothing to do.
    wizard = stack.appliance("wizard")
    assert wizard.returncode == 0 and "setup is complete: the wizard is not needed" in wizard.stderr
    assert stack.commands_run()[-1].strip() == "firstboot_wait"


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
        assert "Podium is set up" in out, out  # the rest went on: the admin from the keys is there
        assert list((stack.layout.xenstore_standin / "vm-data").iterdir()) == []
    finally:
        stack.stop()


async def test_appliance_a_new_setup_code_ends_the_sessions_of_the_old_one(tmp_path):
    stack = first_boot(tmp_path)
    try:
        stack.start_wizard()
        assert "firstboot_wait" in [line.strip() for line in stack.commands_run()]  # before it served
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


# A broken certificate at boot


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _aside(stack: Stack) -> list[str]:
    return sorted(p.name for p in stack.layout.tls_dir.iterdir() if ".broken-" in p.name)


def test_appliance_firstboot_repairs_a_broken_certificate_and_never_replaces_a_good_one(tmp_path):
    stack = first_boot(tmp_path)
    try:
        layout = stack.layout
        # A key that is not the certificate's (a half-done manual replacement): nginx would not start.
        cert = layout.tls_cert.read_bytes()
        _, other_key = tls_install.generate_self_signed("other", [])
        layout.tls_key.write_bytes(other_key)
        boot = stack.appliance("firstboot")
        assert boot.returncode == 0, boot.stderr
        out = boot.stdout
        assert (
            "Podium: the HTTPS certificate could not be used: the key podium.key does not belong to the "
            "certificate podium.crt." in out
        )
        kept = _aside(stack)
        assert len(kept) == 2 and f"as {kept[0]} and {kept[1]}." in out
        new = tls_check.read_info(layout.tls_cert)
        assert f"a self-signed certificate was made, fingerprint {new.fingerprint}" in out
        assert re.search(r"Podium setup code: \S+", out)  # the rest of the boot went on
        assert (layout.tls_dir / kept[0]).read_bytes() == cert
        assert (layout.tls_dir / kept[1]).read_bytes() == other_key
        assert _mode(layout.tls_dir / kept[1]) == 0o600 and _mode(layout.tls_key) == 0o600
        tls_check.validate(layout.tls_cert.read_bytes(), layout.tls_key.read_bytes())  # a usable pair again
        stack.nginx.reload()  # and nginx serves it (a reload takes effect shortly after it returns)
        deadline = time.monotonic() + 30
        while stack.nginx.served_fingerprint() != new.fingerprint and time.monotonic() < deadline:
            time.sleep(0.1)
        assert stack.nginx.served_fingerprint() == new.fingerprint, stack.nginx.error_log()

        # An uploaded pair, usable though not ideal (another name, self-signed): never replaced.
        upload_dir = tmp_path / "upload"
        upload_dir.mkdir()
        good_cert, good_key = tls_install.generate_self_signed("podium.example.com", ["192.0.2.10"])
        (upload_dir / "c.pem").write_bytes(good_cert)
        (upload_dir / "k.pem").write_bytes(good_key)
        installed = stack.appliance("tls", "install", str(upload_dir / "c.pem"), str(upload_dir / "k.pem"))
        assert installed.returncode == 0, installed.stderr
        again = stack.appliance("firstboot")
        assert again.returncode == 0 and "could not be used" not in again.stdout
        assert "certificate was made" not in again.stdout
        assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == (good_cert, good_key)
        assert _aside(stack) == kept

        # An expired one is replaced; so is a certificate file that is not one.
        expired = tls_install.generate_self_signed("podium", [], days=1, now=datetime(2020, 1, 1, tzinfo=UTC))
        tls_install.write_pair(layout, *expired)
        out = stack.appliance("firstboot").stdout
        assert "could not be used: the certificate expired on 2020-01-02 00:00 UTC." in out
        assert len(_aside(stack)) == 4
        layout.tls_cert.write_text("not a certificate\n")
        out = stack.appliance("firstboot").stdout
        assert "could not be used: the certificate podium.crt cannot be read" in out
        assert len(_aside(stack)) == 6
        assert tls_check.installed_problem(layout) is None
    finally:
        stack.stop()


# A network change left unconfirmed across a reboot


def test_appliance_firstboot_reverts_a_change_made_before_the_reboot_at_once(tmp_path):
    stack = first_boot(tmp_path, confirm_seconds=3600)
    try:
        net = Network(stack.layout, stack.layout.settings())
        net.apply(static_config("192.0.2.10", "24", "192.0.2.1", ""))
        before = stack.layout.network_file.read_text()
        net.apply_pending(static_config("198.51.100.7", "24", "", ""), 3600)
        log = stack.root / "commands.log"
        assert "bus_wait" not in log.read_text()  # a plain first boot needs no system bus
        same_boot = stack.appliance("firstboot")  # the deadline is an hour away, in this boot
        assert "network change was undone" not in same_boot.stdout and stack.layout.network_pending.exists()
        pending = json.loads(stack.layout.network_pending.read_text())
        assert pending["boot_id"] == Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        pending["boot_id"] = "00000000-0000-4000-8000-000000000000"  # written by the previous boot
        stack.layout.network_pending.write_text(json.dumps(pending))
        rebooted = stack.appliance("firstboot")
        assert "Podium: an unconfirmed network change was undone" in rebooted.stdout
        assert stack.layout.network_file.read_text() == before and not stack.layout.network_pending.exists()
        ran = [line.split()[0] for line in log.read_text().splitlines()]
        assert ran[-3:] == ["bus_wait", "network_apply", "network_reconfigure"], ran
    finally:
        stack.stop()


# The first pool, typed as a member's address


@pytest.fixture
def member(tls_sim, tmp_path):
    """The simulator's pool member behind a certificate of its own (as in a real pool), on 127.43.0.2."""
    url = urllib.parse.urlsplit(tls_sim.member().url)
    with tls_forwarder(("127.43.0.2", url.port), (url.hostname, url.port), tmp_path / "member") as fwd:
        yield fwd


def _address(url: str) -> str:
    return url.removeprefix("https://")


async def test_pool_a_members_address_leads_to_the_masters_fingerprint_and_login(tls_sim, member):
    port = member.listen[1]
    master = _address(tls_sim.master().url)
    assert member.fingerprint != tls_sim.fingerprint  # the member has a certificate of its own
    found = await first_pool.find_master(f"127.43.0.2:{port}")
    assert found == first_pool.Master(master, tls_sim.fingerprint, member=f"127.43.0.2:{port}")
    checked = await first_pool.check(found.address, tls_sim.user, tls_sim.password, found.fingerprint)
    assert checked.master == master and checked.fingerprint == tls_sim.fingerprint and checked.pool_name
    # What the wizard did before: the member's fingerprint pinned, the login sent on to the master.
    with pytest.raises(
        first_pool.StaleFingerprint, match=rf"is not the pool's master \(any more\): its master is {master}"
    ):
        await first_pool.check(f"127.43.0.2:{port}", tls_sim.user, tls_sim.password, member.fingerprint)
    # The master's own address: no detour, nothing said about members.
    direct = await first_pool.find_master(tls_sim.master().url)
    assert direct == first_pool.Master(master, tls_sim.fingerprint)


async def test_wizard_pool_step_names_the_master_and_pins_its_certificate(tmp_path, tls_sim, member):
    port = member.listen[1]
    master = _address(tls_sim.master().url)
    layout = Layout(tmp_path / "root")
    done = ("admin", "network", "hostname", "time", "tls")
    async with wizard_client(layout, done) as (client, session):
        form = {"csrf": session.csrf, "host": f"127.43.0.2:{port}", "username": "root", "action": "probe"}
        async with client.post("/setup/pool", data=form) as resp:
            page = await resp.text()
        assert resp.status == 200, page
        assert f"127.43.0.2:{port} is a member of a pool, not its master" in page
        assert f'<strong id="master">{master}</strong>' in page
        assert tls_sim.fingerprint in page and member.fingerprint not in page
        connect = {**form, "action": "connect", "confirm": "1", "password": tls_sim.password}
        async with client.post("/setup/pool", data=connect, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/setup/updates", await resp.text()
        values = session.values["pool"]
        assert values["master"] == master and values["fingerprint"] == tls_sim.fingerprint
        session.values.update(admin_email="ops@example.com", admin_password="x")
        answers = answers_of(session.values)  # what finishing gives the server: the master, pinned
        assert (answers.pool_host, answers.pool_fingerprint) == (master, tls_sim.fingerprint)
        # Another address typed after the fingerprint was shown: that address is looked up, not trusted.
        moved = {**connect, "host": tls_sim.master().url}
        async with client.post("/setup/pool", data=moved) as resp:
            page = await resp.text()
        assert resp.status == 200 and "is a member" not in page and tls_sim.fingerprint in page
        assert "pool" not in session.done and "password" not in session.values["pool"]
