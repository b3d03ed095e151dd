"""The ACL matrix: for every method, a user without rights on an object can neither see nor act on it,
and a viewer cannot operate or administrate it; admin-only methods refuse every non-admin."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from podium.api import methods as _methods  # noqa: F401
from podium.api.registry import METHODS
from podium.xapi import XapiClient

from ..harness.serverproc import Api, ApiError, connected, start_server

pytestmark = pytest.mark.integration

_PLAIN = {"string": "x-plain", "integer": 1, "number": 1, "boolean": False, "array": [], "object": {}}


def params_for(name: str, objects: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Required parameters: a real object of the right type for each resolved one, a plain value else."""
    method = METHODS[name]
    resolved = {r.param: r.types for r in method.resolve}
    out: dict[str, Any] = {}
    for key, spec in (method.params or {}).items():
        if key in resolved:
            out[key] = next(
                o["id"]
                for o in objects.values()
                if o["type"] in resolved[key] and o["type"] != "VM-controller"
            )
        elif not spec.get("optional") and "default" not in spec and key != "*":
            t = spec.get("type", "string")
            out[key] = spec["enum"][0] if "enum" in spec else _PLAIN[t[0] if isinstance(t, list) else t]
    return out


async def test_acl_matrix_over_every_method(tmp_path, sim):
    srv = start_server(tmp_path / "data")
    try:
        async with Api(srv.url) as admin, Api(srv.url) as user:
            await admin.sign_in()
            await connected(admin, sim)
            vm = next(o for o in (await admin.call("xo.getAllObjects", {"filter": {"type": "VM"}})).values())
            await admin.call("vm.snapshot", {"id": vm["id"]})  # a VM-snapshot, and (restart) a message
            await admin.call("vm.restart", {"id": vm["id"], "force": True})
            client = XapiClient(sim.master().url, sim.user, sim.password)
            await client.call("Async.SR.scan", (await client.call("SR.get_all"))[0])  # a task
            await client.close()
            types = {"VM-snapshot", "message", "task"}
            for _ in range(200):
                objects = await admin.call("xo.getAllObjects")
                if types <= {o["type"] for o in objects.values()}:
                    break
                await asyncio.sleep(0.05)
            pool = next(o for o in objects.values() if o["type"] == "pool")
            uid = await admin.call(
                "user.create", {"email": "eve@example.org", "password": "eve's long secret"}
            )
            await user.sign_in("eve@example.org", "eve's long secret")
            checked = {"admin-only": 0, "no rights": 0, "viewer": 0}

            for name in sorted(METHODS):
                method = METHODS[name]
                if method.permission == "admin":
                    with pytest.raises(ApiError) as e:
                        await user.call(name, params_for(name, objects) if method.resolve else {})
                    assert e.value.code == 2, name
                    checked["admin-only"] += 1
                elif method.resolve:
                    with pytest.raises(ApiError) as e:  # no right at all: the object does not exist for her
                        await user.call(name, params_for(name, objects))
                    assert e.value.code == 1, (name, e.value)
                    checked["no rights"] += 1

            await admin.call("acl.add", {"subject": uid, "object": pool["id"], "action": "viewer"})
            for name in sorted(METHODS):
                method = METHODS[name]
                if method.permission == "admin" or not any(r.action != "view" for r in method.resolve):
                    continue
                with pytest.raises(ApiError) as e:  # sees everything, may change nothing
                    await user.call(name, params_for(name, objects))
                assert e.value.code == 2 and e.value.data["permission"] in ("operate", "administrate"), (
                    name,
                    e.value,
                )
                checked["viewer"] += 1
            assert checked["admin-only"] >= 15 and checked["no rights"] >= 25 and checked["viewer"] >= 25, (
                checked
            )
    finally:
        srv.stop()
