"""network.*: creating, naming and deleting networks."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Resolve, api
from .common import NAMES, created, set_names, xapi


@api("network.create",
     params={"pool": {"type": "string"}, "name": {"type": "string"},
             "description": {"type": "string", "optional": True, "minLength": 0},
             "mtu": {"type": "integer", "optional": True, "minimum": 68, "maximum": 9216}},
     resolve=(Resolve("pool", ("pool",), "administrate"),))  # fmt: skip
async def create(
    ctx: Context, pool: dict[str, Any], name: str, description: str = "", mtu: int = 1500
) -> str:
    """Create a network (private to the pool's hosts until a PIF joins it); returns its id."""
    client = ctx.services.servers.client_of(pool["$poolId"])
    ref = await client.call("network.create", {"name_label": name, "name_description": description, "MTU": mtu,
                                               "other_config": {}, "tags": []})  # fmt: skip
    return await created(ctx, pool, "network", ref)


@api("network.set", params={"id": {"type": "string"}, **NAMES},
     resolve=(Resolve("id", ("network",), "administrate"),))  # fmt: skip
async def set_(
    ctx: Context, id: dict[str, Any], name_label: str | None = None, name_description: str | None = None
) -> None:
    """Rename or describe a network."""
    await set_names(ctx, id, name_label, name_description)


@api(
    "network.delete",
    params={"id": {"type": "string"}},
    resolve=(Resolve("id", ("network",), "administrate"),),
)
async def delete(ctx: Context, id: dict[str, Any]) -> None:
    """Delete a network."""
    await xapi(ctx, id, "network.destroy")
