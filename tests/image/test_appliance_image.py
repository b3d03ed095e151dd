"""The appliance image as a user receives it: the XVA imported into a pool, booted, set up in the browser's
place over HTTPS, updated in place, rebooted. Runs with ``make image-test`` (after ``make xva``).

The tests run in this file's order against one booted appliance (tests/image/conftest.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
import xmlrpc.client
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from ..harness.nginxproc import served_fingerprint
from ..harness.simproc import jsonrpc, start_sim
from ..harness.updateproc import BundleFactory
from .conftest import BOOT_SECONDS
from .vmproc import BUILD, ROOT, UPDATE_ADDRESS, Vm, insecure_tls

pytestmark = [pytest.mark.image, pytest.mark.timeout(1500)]

MiB = 1024**2
ADMIN = "admin@podium.example"
PASSWORD = "Quiet-Harbour-Lantern-61"
#: The version ``make xva`` put in the image: podium-appliance-<version>.xva
_VERSION = re.compile(r"podium-appliance-(.+)\.xva$")


def version_of(xva: Path) -> str:
    match = _VERSION.search(xva.name)
    assert match, xva
    return match.group(1)


def bumped(version: str) -> str:
    parts = [int(p) for p in version.split(".")[:3]]
    return f"{parts[0]}.{parts[1]}.{parts[2] + 1}"


# -- the XVA ---------------------------------------------------------------------------------------------
def test_image_xva_is_under_700_mb_and_matches_its_sha256(xva: Path):
    size = xva.stat().st_size
    print(f"\nimage: {xva.name} is {size / MiB:.0f} MiB")
    assert size < 700 * MiB
    digest = hashlib.sha256()
    with xva.open("rb") as f:
        while block := f.read(4 * MiB):
            digest.update(block)
    assert xva.with_name(xva.name + ".sha256").read_text() == f"{digest.hexdigest()}  {xva.name}\n"


def test_image_imports_into_a_pool_through_put_import(xva: Path):
    """PUT /import into the simulator, as a pool receives the XVA from a user: the VM as described."""
    sim = start_sim("--op-seconds", "0")
    try:
        url = sim.master().url
        s = jsonrpc(url, "session.login_with_password", sim.user, sim.password, "2.0", "image-test")
        sr = next(
            r
            for r, v in sorted(jsonrpc(url, "SR.get_all_records", s).items())
            if v["content_type"] != "iso" and v["type"] != "udev"
        )
        task = jsonrpc(url, "task.create", s, "import", "")
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=600)
        query = urllib.parse.urlencode({"session_id": s, "task_id": task, "sr_id": sr})
        with xva.open("rb") as body:
            conn.request(
                "PUT", f"/import?{query}", body=body, headers={"Content-Length": str(xva.stat().st_size)}
            )
            assert conn.getresponse().status == 200
        conn.close()
        deadline = time.monotonic() + 120
        while (rec := jsonrpc(url, "task.get_record", s, task))["status"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.5)
        assert rec["status"] == "success", rec["error_info"]
        wrapped = f"<methodResponse><params><param>{rec['result']}</param></params></methodResponse>"
        vm = xmlrpc.client.loads(wrapped)[0][0][0]
        record = jsonrpc(url, "VM.get_record", s, vm)
        assert record["name_label"] == f"Podium appliance {version_of(xva)}"
        assert int(record["VCPUs_max"]) == 2 and int(record["memory_static_max"]) == 2 * 1024**3
        assert record["HVM_boot_policy"] == "BIOS order" and record["HVM_boot_params"]["order"] == "cd"
        assert len(record["VIFs"]) == 1
        vdis = [jsonrpc(url, "VBD.get_record", s, b)["VDI"] for b in record["VBDs"]]
        sizes = [jsonrpc(url, "VDI.get_virtual_size", s, v) for v in vdis if v != "OpaqueRef:NULL"]
        assert [int(size) for size in sizes] == [20 * 1024**3]
    finally:
        sim.stop()


# -- first boot ------------------------------------------------------------------------------------------
def test_image_boots_to_the_setup_code_on_the_serial_console(vm: Vm):
    seconds = vm.wait_serial("Podium setup code:", BOOT_SECONDS)
    print(
        f"\nimage: setup code on the serial console {seconds:.0f} s after power-on, the wizard over HTTPS at "
        f"{vm.wizard_seconds:.0f} s ({vm.accel})"
    )
    code = re.search(r"Podium setup code: (\S+)", vm.serial_text()).group(1)  # type: ignore[union-attr]
    assert code in vm.ssh("podium-appliance setup-code").stdout
    assert code in vm.ssh("cat /etc/issue.d/podium.issue").stdout


def test_image_services_are_enabled_and_running(vm: Vm):
    assert vm.boot_verdict == "running", vm.ssh("systemctl --failed --no-pager").stdout
    host = vm.host()
    for unit in (
        "ssh",
        "nginx",
        "nftables",
        "systemd-networkd",
        "systemd-resolved",
        "systemd-timesyncd",
        "podium-firstboot",
        "podium-wizard",
        "podium-updater",
    ):
        service = host.service(unit)
        assert service.is_enabled, unit
        assert service.is_running, unit
    assert not host.service("podium-server").is_enabled  # setup enables it
    metrics = host.service("podium-guest-metrics")
    assert metrics.is_enabled
    # not under Xen: its condition keeps it from starting, without an error
    shown = host.check_output("systemctl show -p ConditionResult -p Result podium-guest-metrics")
    assert "ConditionResult=no" in shown and "Result=success" in shown


def test_image_boots_from_a_small_initramfs_that_finds_any_pools_disk(vm: Vm):
    host = vm.host()
    (initrd,) = host.check_output("ls /boot/initrd.img-*").split()
    listing = host.check_output(f"lsinitramfs {initrd}")
    # Xen's PV disks and the emulated IDE before them, virtio, NVMe, and the root's ext4
    for module in ("xen-blkfront.ko", "ata_piix.ko", "virtio_blk.ko", "nvme.ko", "ext4.ko"):
        assert f"/{module}" in listing, module
    assert "/drivers/net/" not in listing  # MODULES=most put every network driver in (36 MB)
    assert host.file(initrd).size < 12 * 1024**2, host.file(initrd).size
    assert host.run("systemctl is-enabled e2scrub_reap.service").stdout.strip() == "masked"


def test_image_listens_only_on_ssh_http_https_from_outside(vm: Vm):
    host = vm.host()
    outside = set()
    for socket_url in host.socket.get_listening_sockets():
        proto, _, rest = socket_url.partition("://")
        if proto not in ("tcp", "udp"):
            continue
        address, _, port = rest.rpartition(":")
        if address.startswith(("127.", "::1", "[::1]")) or address == "::ffff:127.0.0.1":
            continue
        outside.add((proto, int(port)))
    tcp = {port for proto, port in outside if proto == "tcp"}
    udp = {port for proto, port in outside if proto == "udp"}
    assert tcp == {22, 80, 443}, outside
    assert udp <= {68, 546}, outside  # DHCP clients
    rules = host.check_output("nft list ruleset")
    assert "policy drop" in rules and re.search(r"tcp dport \{ 22, 80, 443 \} accept", rules), rules


def test_image_secrets_are_readable_by_their_owners_only(vm: Vm):
    host = vm.host()
    expected = {
        "/etc/podium/tls/podium.key": ("root", 0o600),
        "/var/lib/podium-appliance": ("root", 0o700),
        "/var/lib/podium-appliance/setup-code": ("root", 0o600),
        "/var/lib/podium-updater": ("root", 0o700),
        "/var/lib/podium": ("podium", 0o700),
        "/root/.ssh": ("root", 0o700),
        "/root/.ssh/authorized_keys": ("root", 0o600),
    }
    for path, (owner, mode) in expected.items():
        f = host.file(path)
        assert f.exists, path
        assert (f.user, f.mode) == (owner, mode), (path, f.user, oct(f.mode))
    for key in host.check_output("ls /etc/ssh/ssh_host_*_key").split():
        assert host.file(key).mode == 0o600, key
    # made by this copy at its first boot: no build key left, a machine id of its own
    assert host.file("/root/.ssh/authorized_keys").content_string.count("ssh-") == 1
    assert "podium-image-test" in host.file("/root/.ssh/authorized_keys").content_string
    assert re.fullmatch(r"[0-9a-f]{32}", host.file("/etc/machine-id").content_string.strip())
    assert "passwordauthentication no" in host.check_output("sshd -T").splitlines()


def test_image_nginx_configuration_is_valid(vm: Vm):
    done = vm.host().run("nginx -t")
    assert done.rc == 0, done.stderr


def test_image_serves_the_wizard_over_https(vm: Vm):
    match = re.search(r"fingerprint ([0-9A-F:]{95})", vm.serial_text())
    assert match, vm.serial_text()[-3000:]
    assert served_fingerprint(vm.ports[443]) == match.group(1)
    conn = http.client.HTTPConnection("127.0.0.1", vm.ports[80], timeout=30)
    conn.request("GET", "/")
    resp = conn.getresponse()
    status, location = resp.status, resp.getheader("Location", "")
    conn.close()
    assert status in (301, 308) and location.startswith("https://")
    conn = http.client.HTTPSConnection("127.0.0.1", vm.ports[443], timeout=30, context=insecure_tls())
    conn.request("GET", "/setup/")
    resp = conn.getresponse()
    status, page = resp.status, resp.read().decode()
    conn.close()
    assert status == 200 and "setup code" in page.lower()


# -- setup -----------------------------------------------------------------------------------------------
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


async def _step(http: aiohttp.ClientSession, base: str, step: str, form: dict[str, str]) -> str:
    """POST a wizard step's form (with its CSRF token); the path it leads to."""
    async with http.get(f"{base}/setup/{step}", allow_redirects=False) as resp:
        page = await resp.text()
        assert resp.status == 200, (step, resp.status, page[-1500:])
    csrf = _CSRF.search(page)
    assert csrf, page[-1500:]
    async with http.post(
        f"{base}/setup/{step}", data={**form, "csrf": csrf.group(1)}, allow_redirects=False
    ) as resp:
        body = await resp.text()
        assert resp.status == 303, (step, resp.status, body[-2000:])
        return resp.headers["Location"]


async def _api(vm: Vm, *calls: tuple[str, dict[str, Any]], timeout: float = 60) -> list[Any]:
    """JSON-RPC calls through nginx over HTTPS, signed in as the admin; the results."""
    results = []
    url = f"wss://127.0.0.1:{vm.ports[443]}/api/"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, ssl=insecure_tls()) as ws:
        todo = [("session.signIn", {"email": ADMIN, "password": PASSWORD}), *calls]
        for call_id, (method, params) in enumerate(todo, 1):
            await ws.send_json({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})
            while True:
                reply = json.loads((await ws.receive(timeout=timeout)).data)
                if reply.get("id") == call_id:
                    break
            assert "error" not in reply, (method, reply["error"])
            results.append(reply["result"])
    return results[1:]


async def _wait_api(vm: Vm, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            await _api(vm, timeout=20)
            return
        except (aiohttp.ClientError, AssertionError, TimeoutError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(2)


async def test_image_wizard_completes_and_the_admin_signs_in(vm: Vm):
    code = re.search(r"Podium setup code: (\S+)", vm.serial_text()).group(1)  # type: ignore[union-attr]
    base = f"https://127.0.0.1:{vm.ports[443]}"
    jar = aiohttp.CookieJar(unsafe=True)  # cookies for an IP address
    # a connection per request: the certificate step reloads nginx, which closes idle kept-alive connections
    connector = aiohttp.TCPConnector(ssl=insecure_tls(), force_close=True)
    async with aiohttp.ClientSession(cookie_jar=jar, connector=connector) as http:
        async with http.post(f"{base}/setup/code", data={"code": code}, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/setup/admin", await resp.text()
        steps = [
            ("admin", {"email": ADMIN, "password": PASSWORD, "password2": PASSWORD}),
            ("network", {"mode": "dhcp"}),
            ("hostname", {"hostname": "podium-image"}),
            ("time", {"zone": "UTC", "ntp": "127.0.0.1", "accept_unreachable": "on"}),
            ("tls", {"choice": "generate"}),
            ("pool", {"action": "skip"}),
            ("updates", {"channel": "stable", "proxy": ""}),
        ]
        for step, form in steps:
            await _step(http, base, step, form)
        async with http.get(f"{base}/setup/finish") as resp:
            csrf = _CSRF.search(await resp.text())
        assert csrf
        async with http.post(f"{base}/setup/finish", data={"csrf": csrf.group(1)}) as resp:
            assert resp.status == 200 and "Setup is complete" in await resp.text()
    await _wait_api(vm, 120)
    (user,) = await _api(vm, ("session.getUser", {}))
    assert user["email"] == ADMIN and user["permission"] == "admin"
    host = vm.host()
    assert host.service("podium-server").is_enabled and host.service("podium-server").is_running
    assert not host.service("podium-wizard").is_running
    assert host.check_output("hostname") == "podium-image"
    assert PASSWORD not in host.check_output("journalctl -b --no-pager -o cat | tail -n 2000")


# -- the updater -----------------------------------------------------------------------------------------
def test_image_playbook_run_again_on_the_live_appliance_changes_nothing(vm: Vm, xva: Path, tmp_path: Path):
    version = version_of(xva)
    inventory = tmp_path / "inventory"
    inventory.write_text(
        f"appliance ansible_host=127.0.0.1 ansible_port={vm.ports[22]} ansible_user=root "
        f"ansible_ssh_private_key_file={vm.key} "
        "ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null'\n"
    )
    extra = (
        f"server_bundle={BUILD}/bundles/podium-{version}.bundle server_version={version} "
        f"updater_keyring={BUILD}/keys/keyring.json"
    )
    playbook = Path(sys.executable).with_name("ansible-playbook")
    argv = [str(playbook), "-i", str(inventory), "--extra-vars", extra, str(ROOT / "provisioning/site.yml")]
    env = {"ANSIBLE_CONFIG": str(ROOT / "provisioning/ansible.cfg"), "PATH": "/usr/bin:/bin"}
    env |= {"ANSIBLE_NOCOLOR": "1", "HOME": str(tmp_path)}
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False, env=env)
    recap = done.stdout[done.stdout.rfind("PLAY RECAP") :]
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert re.search(r"changed=0\s", recap) and re.search(r"failed=0\s", recap), done.stdout[-6000:]


async def test_image_updates_in_place_from_its_channel_and_survives_a_reboot(
    vm: Vm, xva: Path, update_server: tuple[Path, int], tmp_path: Path
):
    old, new = version_of(xva), bumped(version_of(xva))
    factory = BundleFactory(tmp_path / "bundles")
    factory.key_path.parent.mkdir(parents=True)
    shutil.copyfile(BUILD / "keys" / "release.key", factory.key_path)  # the key the image trusts
    shutil.copyfile(BUILD / "keys" / "keyring.json", factory.keyring_path)
    bundle = factory(new, min_version=old, notes=f"Podium {new}: the image test's update.")
    factory.channel([bundle], "stable", update_server[0])
    vm.ssh(
        f'printf \'channel = "stable"\\nurl = "http://{UPDATE_ADDRESS}/"\\n\' > /etc/podium/updates.toml'
        " && systemctl restart podium-updater"
    )
    await _wait_api(vm, 60)
    deadline = time.monotonic() + 120
    while True:  # the updater restarted: its socket answers once it has started (seconds under TCG)
        try:
            await _api(vm, ("updater.getState", {}))
            break
        except AssertionError:
            assert time.monotonic() < deadline, vm.ssh("journalctl -u podium-updater -n 40 --no-pager").stdout
            await asyncio.sleep(2)
    (state,) = await _api(vm, ("updater.check", {}))
    assert new in json.dumps(state), state
    started = time.monotonic()
    await _api(vm, ("updater.upgrade", {"version": new}), timeout=900)
    deadline = time.monotonic() + 900
    while True:
        try:
            (version,) = await _api(vm, ("system.getServerVersion", {}), timeout=20)
            if version == new:
                break
        except (aiohttp.ClientError, AssertionError, TimeoutError):
            pass
        assert time.monotonic() < deadline, vm.ssh("journalctl -u podium-updater -n 80 --no-pager").stdout
        await asyncio.sleep(3)
    print(f"\nimage: {old} -> {new} in place in {time.monotonic() - started:.0f} s ({vm.accel})")
    assert vm.ssh("readlink /opt/podium/current").stdout.strip().endswith(f"releases/{new}")
    seconds = vm.reboot(BOOT_SECONDS)
    print(f"image: SSH back {seconds:.0f} s after the reboot")
    await _wait_api(vm, 180)
    (version, user) = await _api(vm, ("system.getServerVersion", {}), ("session.getUser", {}))
    assert version == new and user["email"] == ADMIN
    host = vm.host()
    for unit in ("nginx", "podium-server", "podium-updater", "ssh"):
        assert host.service(unit).is_running, unit
    assert not host.service("podium-wizard").is_running
