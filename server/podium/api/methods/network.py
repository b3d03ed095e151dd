"""network.*: creating, naming and deleting networks."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..params import integer, string
from ..registry import Resolve, api
from .common import ID, NAMES, created, set_names, xapi

_NETWORK = (Resolve("id", ("network",), "administrate"),)


@api(
    "network.create",
    params={
        "pool": string(),
        "name": string(),
        "description": string(optional=True, minLength=0),
        "mtu": integer(optional=True, minimum=68, maximum=9216),
    },
    resolve=(Resolve("pool", ("pool",), "administrate"),),
)
async def create(
    ctx: Context, pool: dict[str, Any], name: str, description: str = "", mtu: int = 1500
) -> str:
    """Create a network (private to the pool's hosts until a PIF joins it); returns its id."""
    client = ctx.services.servers.client_of(pool["$poolId"])
    record = {"name_label": name, "name_description": description, "MTU": mtu, "other_config": {}, "tags": []}
    ref = await client.call("network.create", record)
    return await created(ctx, pool, "network", ref)


@api("network.set", params={**ID, **NAMES}, resolve=_NETWORK)
async def set_(
    ctx: Context, id: dict[str, Any], name_label: str | None = None, name_description: str | None = None
) -> None:
    """Rename or describe a network."""
    await set_names(ctx, id, name_label, name_description)


@api("network.delete", params=ID, resolve=_NETWORK)
async def delete(ctx: Context, id: dict[str, Any]) -> None:
    """Delete a network."""
    await xapi(ctx, id, "network.destroy")
