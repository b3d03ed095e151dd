"""pool.*: naming a pool and choosing its default SR."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..params import string
from ..registry import Resolve, api
from .common import ID, NAMES, set_names, xapi


@api("pool.set", params={**ID, **NAMES}, resolve=(Resolve("id", ("pool",), "administrate"),))
async def set_(
    ctx: Context, id: dict[str, Any], name_label: str | None = None, name_description: str | None = None
) -> None:
    """Rename or describe a pool."""
    await set_names(ctx, id, name_label, name_description)


@api("pool.setDefaultSr", params={"sr": string()}, resolve=(Resolve("sr", ("SR",), "administrate"),))
async def set_default_sr(ctx: Context, sr: dict[str, Any]) -> None:
    """Make an SR its pool's default (where new disks go when none is named)."""
    pool = ctx.object(sr["$poolId"], ("pool",), "administrate")
    await xapi(ctx, pool, "pool.set_default_SR", sr["_xapiRef"])
