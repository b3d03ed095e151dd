"""vm.create from a real template: CPUs, memory, provisioned and extra disks, interfaces, install media, boot."""

from __future__ import annotations

import pytest

from ..serverproc import ApiError
from .test_api_vm import obj, until

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

    vm_id = await api.call("vm.create", {
        "name_label": "web-1", "name_description": "front end", "template": template["id"], "CPUs": 2,
        "memory": 1 << 30, "sr": sr["id"], "VDIs": [{"size": 2 << 30, "SR": other_sr["id"], "name_label": "data"}],
        "VIFs": [{"network": network["id"]}, {"network": network["id"], "mac": "02:00:00:00:00:42"}],
        "installation": {"method": "cdrom", "repository": iso["id"]}, "tags": ["web"], "bootAfterCreate": True,
    })  # fmt: skip
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
        await api.call("vm.create", {"name_label": "bad", "template": template["id"],
                                     "VIFs": [{"network": "no-such-network"}]})  # fmt: skip
    assert e.value.code == 1
    after = await api.call("xo.getAllObjects")
    made = {i for i, o in after.items() if o["type"] in ("VM", "VDI", "VBD", "VIF")} - before
    assert made == {vm_id, *vm["$VBDs"], *vm["VIFs"], *(d["id"] for d in disks.values())}
    assert not any(o.get("name_label") == "bad" for o in after.values())
