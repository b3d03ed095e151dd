"""vm.*: VM power operations (the rest of the namespace follows)."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Resolve, api

_VM = (Resolve("id", ("VM",), "operate"),)


async def _xapi(ctx: Context, vm: dict[str, Any], method: str, *args: Any) -> Any:
    client = ctx.services.servers.client_of(vm["$poolId"])
    return await client.call(method, vm["_xapiRef"], *args)


@api("vm.start", params={"id": {"type": "string"}, "force": {"type": "boolean", "optional": True}},
     resolve=_VM)  # fmt: skip
async def start(ctx: Context, id: dict[str, Any], force: bool = False) -> bool:
    """Start a halted VM."""
    await _xapi(ctx, id, "VM.start", False, force)
    return True


@api("vm.stop", params={"id": {"type": "string"}, "force": {"type": "boolean", "default": False}},
     resolve=_VM)  # fmt: skip
async def stop(ctx: Context, id: dict[str, Any], force: bool = False) -> bool:
    """Shut a VM down (cleanly, or at once with force)."""
    await _xapi(ctx, id, "VM.hard_shutdown" if force else "VM.clean_shutdown")
    return True
