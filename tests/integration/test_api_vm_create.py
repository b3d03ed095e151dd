"""vm.create from a real template: CPUs, memory, provisioned and extra disks, interfaces, install media, boot."""

from __future__ import annotations

import asyncio
import urllib.parse
import urllib.request

import pytest

from ..harness.isoread import blkid, read_iso
from ..harness.serverproc import ApiError, obj, until
from ..harness.simproc import jsonrpc

pytestmark = pytest.mark.integration


async def test_api_vm_create_from_a_template(podium_api):
    api = podium_api
    every = await api.call("xo.getAllObjects")
    template = next(o for o in every.values() if o["type"] == "VM-template" and o["template_info"]["disks"])
    srs = [o for o in every.values() if o["type"] == "SR" and o["content_type"] != "iso" and o["size"] > 0]
    sr, other_sr = srs[0], srs[-1]
    network = next(o for o in every.values() if o["type"] == "network")
    iso = next(o for o in every.values() if o["type"] == "VDI" and o["name_label"] == "xs-tools.iso")
    before = {i for i, o in every.items() if o["type"] in ("VM", "VDI", "VBD", "VIF")}

    vm_id = await api.call(
        "vm.create",
        {
            "name_label": "web-1",
            "name_description": "front end",
            "template": template["id"],
            "CPUs": 2,
            "memory": 1 << 30,
            "sr": sr["id"],
            "VDIs": [{"size": 2 << 30, "SR": other_sr["id"], "name_label": "data"}],
            "VIFs": [{"network": network["id"]}, {"network": network["id"], "mac": "02:00:00:00:00:42"}],
            "installation": {"method": "cdrom", "repository": iso["id"]},
            "tags": ["web"],
            "bootAfterCreate": True,
        },
    )
    vm = await until(api, vm_id, lambda o: o["power_state"] == "Running")
    assert vm["type"] == "VM" and vm["name_description"] == "front end" and vm["tags"] == ["web"]
    assert vm["CPUs"]["number"] == 2 and vm["memory"]["size"] == 1 << 30
    vbds = [await obj(api, b) for b in vm["$VBDs"]]
    disks = {b["position"]: await obj(api, b["VDI"]) for b in vbds if not b["is_cd_drive"]}
    assert len(disks) == len(template["template_info"]["disks"]) + 1
    assert {d["$SR"] for d in disks.values()} == {sr["id"], other_sr["id"]}
    assert any(b["is_cd_drive"] and b["VDI"] == iso["id"] for b in vbds)
    vifs = [await obj(api, v) for v in vm["VIFs"]]
    assert sorted(v["MAC"] for v in vifs)[0] == "02:00:00:00:00:42" and len(vifs) == 2

    # An unknown network is refused before anything is made.
    with pytest.raises(ApiError) as e:
        await api.call(
            "vm.create",
            {"name_label": "bad", "template": template["id"], "VIFs": [{"network": "no-such-network"}]},
        )
    assert e.value.code == 1
    after = await api.call("xo.getAllObjects")
    made = {i for i, o in after.items() if o["type"] in ("VM", "VDI", "VBD", "VIF")} - before
    assert made == {vm_id, *vm["$VBDs"], *vm["VIFs"], *(d["id"] for d in disks.values())}
    assert not any(o.get("name_label") == "bad" for o in after.values())


# --- cloud-init config drives ------------------------------------------------------------------
CLOUD_CONFIG = (
    "#cloud-config\nhostname: {name}\nfqdn: {name}.example.org\nruncmd:\n  - echo {index} > /root/n\n"
)
NETWORK_CONFIG = (
    "network:\n  version: 1\n  config:\n  - type: physical\n    name: eth0\n    subnets:\n    - type: dhcp\n"
)


def xapi_session(sim) -> tuple[str, str]:
    url = sim.master().url
    return url, jsonrpc(url, "session.login_with_password", sim.user, sim.password, "2.0", "test")


def raw_disk(url: str, session: str, vdi: str) -> bytes:
    """A disk's content, read from the pool as any XAPI client reads it."""
    query = urllib.parse.urlencode({"session_id": session, "vdi": vdi, "format": "raw"})
    with urllib.request.urlopen(f"{url}/export_raw_vdi?{query}", timeout=30) as resp:
        return resp.read()


def pool_refs(url: str, session: str) -> dict[str, set[str]]:
    return {cls: set(jsonrpc(url, f"{cls}.get_all", session)) for cls in ("VM", "VDI", "VBD", "VIF")}


def disk_template(every: dict) -> dict:
    return next(o for o in every.values() if o["type"] == "VM-template" and o["template_info"]["disks"])


async def test_api_vm_create_with_a_cloud_config(podium_api, sim, tmp_path):
    api = podium_api
    every = await api.call("xo.getAllObjects")
    template = disk_template(every)
    sr = next(o for o in every.values() if o["type"] == "SR" and o["content_type"] != "iso" and o["size"] > 0)

    vm_id = await api.call(
        "vm.create",
        {
            "name_label": "web-1",
            "template": template["id"],
            "sr": sr["id"],
            "cloudConfig": CLOUD_CONFIG,
            "networkConfig": NETWORK_CONFIG,
            "coreOs": False,
        },
    )
    vm = await until(api, vm_id, lambda o: len(o["$VBDs"]) == len(template["template_info"]["disks"]) + 1)
    vbds = [await obj(api, b) for b in vm["$VBDs"]]
    disks = {b["id"]: await obj(api, b["VDI"]) for b in vbds}
    (drive_vbd,) = [b for b in vbds if disks[b["id"]]["name_label"] == "XO CloudConfigDrive"]
    drive = disks[drive_vbd["id"]]
    assert drive["$SR"] == sr["id"] and drive["size"] == 10 << 20  # the first disk's SR; 10 MiB as XO's
    assert not drive_vbd["is_cd_drive"] and not drive_vbd["bootable"] and not drive_vbd["read_only"]

    # The VBD as Xen Orchestra's VBD_create makes it, read from the pool itself.
    url, session = xapi_session(sim)
    vbd = jsonrpc(url, "VBD.get_record", session, jsonrpc(url, "VBD.get_by_uuid", session, drive_vbd["id"]))
    kind = (vbd["type"], vbd["mode"], vbd["bootable"], vbd["unpluggable"], vbd["empty"])
    assert kind == ("Disk", "RW", False, False, False)
    others = {b["position"] for b in vbds if b["id"] != drive_vbd["id"]}
    assert vbd["userdevice"] == min(str(n) for n in range(255) if str(n) not in others and n != 3)

    # The drive's content, read back raw from the pool and through a reader of our own.
    content = raw_disk(url, session, vbd["VDI"])
    assert len(content) == 10 << 20
    iso = read_iso(content)
    assert iso.label == iso.joliet_label == "cidata" and iso.files == iso.rock_ridge
    assert iso.files["user-data"].decode() == CLOUD_CONFIG.replace("{name}", "web-1").replace("{index}", "0")
    assert iso.files["meta-data"].decode() == f'instance-id: "{vm_id}"\nlocal-hostname: "web-1"\n'
    assert iso.files["network-config"].decode() == NETWORK_CONFIG  # as XO: not a template
    assert iso.files["openstack/latest/user_data"] == iso.files["user-data"]
    (tmp_path / "drive.img").write_bytes(content)
    probe = blkid(tmp_path / "drive.img")
    if probe is not None:
        assert probe["TYPE"] == "iso9660" and probe["LABEL"] == "cidata"

    # A cloud config holds passwords and keys: the audit log keeps it out, as it does passwords.
    for _ in range(50):  # the audit log is written in batches
        records = [r for r in await api.call("audit.getRecords", {"limit": 50}) if r["method"] == "vm.create"]
        if records:
            break
        await asyncio.sleep(0.1)
    assert records[0]["params"]["cloudConfig"] == records[0]["params"]["networkConfig"] == "* obfuscated *"


async def test_api_vm_create_rolls_back_after_a_failure_midway(podium_api, sim):
    api = podium_api
    every = await api.call("xo.getAllObjects")
    template = disk_template(every)
    bare = next(
        o
        for o in every.values()
        if o["type"] == "VM-template" and not o["template_info"]["disks"] and not o["$VBDs"]
    )
    url, session = xapi_session(sim)
    before = pool_refs(url, session)
    seen = {i for i, o in every.items() if o["type"] in ("VM", "VDI", "VBD", "VIF")}

    drive = "the cloud config drive could not be made: "
    cases = [
        # the drive's upload fails once its bytes were sent: its disk exists, attached to nothing
        (
            {"method": "/import_raw_vdi", "error": ["SR_FULL", "10485760", "0"]},
            {},
            21,
            drive + "SR_FULL(10485760, 0)",
        ),
        # attaching the filled drive fails
        (
            {"method": "VBD.create", "error": ["INTERNAL_ERROR", "injected"]},
            {},
            21,
            drive + "INTERNAL_ERROR(injected)",
        ),
        # the VM, its disks and its drive all exist when its start fails (XO's noHostsAvailable, code 7)
        (
            {"method": "VM.start", "error": ["NO_HOSTS_AVAILABLE"]},
            {"bootAfterCreate": True},
            7,
            "NO_HOSTS_AVAILABLE()",
        ),
    ]
    for fault, extra, code, message in cases:
        sim.ctl("POST", "/faults", fault)
        with pytest.raises(ApiError) as e:
            await api.call(
                "vm.create",
                {"name_label": "half-made", "template": template["id"], "cloudConfig": CLOUD_CONFIG, **extra},
            )
        assert e.value.code == code and str(e.value).startswith(message), e.value
        assert e.value.data == {"code": fault["error"][0], "params": fault["error"][1:]}
        assert sim.ctl("GET", "/faults") == [], "the fault did not fire"
        assert pool_refs(url, session) == before, f"{fault['method']}: the pool keeps what vm.create made"

    # A template without disks: no SR for a drive; the VM cloned from it goes too.
    with pytest.raises(ApiError) as e:
        await api.call(
            "vm.create", {"name_label": "half-bare", "template": bare["id"], "cloudConfig": "#cloud-config\n"}
        )
    assert "needs a VM with a disk" in str(e.value)
    assert pool_refs(url, session) == before

    # And the server's objects agree, once the pool's events have come.
    for _ in range(100):
        now = await api.call("xo.getAllObjects")
        if not {i for i, o in now.items() if o["type"] in ("VM", "VDI", "VBD", "VIF")} - seen:
            break
        await asyncio.sleep(0.05)
    assert not {i for i, o in now.items() if o["type"] in ("VM", "VDI", "VBD", "VIF")} - seen
    assert not any(o.get("name_label", "").startswith("half-") for o in now.values())
    tasks = jsonrpc(url, "task.get_all_records", session).values()
    assert not [t for t in tasks if t["name_label"] == "Import cloud config drive"]
