"""What the namespaces share: calling XAPI on an object's pool, the XAPI class of an XO type, and the
parameters and object types that recur in declarations."""

from __future__ import annotations

from typing import Any

from ...xapi.task import call_async
from ..context import Context
from ..errors import ApiError
from ..params import Schema, string

# Xen Orchestra splits two XAPI classes into several types; every other type is its class's name.
XAPI_CLASS = {
    **dict.fromkeys(("VM", "VM-template", "VM-snapshot", "VM-controller"), "VM"),
    **dict.fromkeys(("VDI", "VDI-snapshot", "VDI-unmanaged"), "VDI"),
    **{t: t for t in ("host", "pool", "SR", "network", "message", "task", "PIF", "VIF", "VBD", "PBD")},
}
VMS = ("VM", "VM-snapshot", "VM-template")  # what can be cloned, copied, exported or deleted as a VM

ID: Schema = {"id": string()}
NAMES: Schema = {"name_label": string(optional=True), "name_description": string(optional=True, minLength=0)}


async def xapi(ctx: Context, obj: dict[str, Any], method: str, *args: Any) -> Any:
    """Call a XAPI method on the object's own pool, with its reference first."""
    client = ctx.services.servers.client_of(obj["$poolId"])
    return await client.call(method, obj["_xapiRef"], *args)


async def xapi_task(
    ctx: Context, obj: dict[str, Any], method: str, *args: Any, timeout: float = 3600.0
) -> str:
    """``Async.<method>`` on the object's pool, waited for as Xen Orchestra's ``callAsync`` waits: the
    task's result (XML text), or its failure raised; the task is forgotten after."""
    client = ctx.services.servers.client_of(obj["$poolId"])
    task = await call_async(client, method, obj["_xapiRef"], *args)
    try:
        return await task.result(timeout)
    finally:
        await task.destroy()


async def created(ctx: Context, obj: dict[str, Any], cls: str, ref: str, timeout: float = 15.0) -> str:
    """The id of an object XAPI just created (in ``obj``'s pool), once the cache has it."""
    client = ctx.services.servers.client_of(obj["$poolId"])
    uuid = str(await client.call(f"{cls}.get_uuid", ref))
    objects = ctx.services.objects
    try:
        await objects.wait_for(lambda: objects.get(uuid), timeout)
    except TimeoutError:
        raise ApiError(f"the new {cls} {uuid} did not appear within {timeout:.0f} s") from None
    return uuid


async def set_names(
    ctx: Context, obj: dict[str, Any], name_label: str | None, name_description: str | None
) -> None:
    """Rename and describe any object that has names."""
    cls = XAPI_CLASS[obj["type"]]
    if name_label is not None:
        await xapi(ctx, obj, f"{cls}.set_name_label", name_label)
    if name_description is not None:
        await xapi(ctx, obj, f"{cls}.set_name_description", name_description)
