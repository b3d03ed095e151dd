"""tag.*: tags on any object that has them."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..params import string
from ..registry import Resolve, api
from .common import ID, XAPI_CLASS, xapi

_TAGGED = ("VM", "VM-template", "VM-snapshot", "host", "pool", "SR", "VDI", "VDI-snapshot", "network")
_PARAMS = {**ID, "tag": string()}


@api("tag.add", params=_PARAMS, resolve=(Resolve("id", _TAGGED, "administrate"),))
async def add(ctx: Context, id: dict[str, Any], tag: str) -> None:
    """Tag an object."""
    await xapi(ctx, id, f"{XAPI_CLASS[id['type']]}.add_tags", tag)


@api("tag.remove", params=_PARAMS, resolve=(Resolve("id", _TAGGED, "administrate"),))
async def remove(ctx: Context, id: dict[str, Any], tag: str) -> None:
    """Remove a tag from an object."""
    await xapi(ctx, id, f"{XAPI_CLASS[id['type']]}.remove_tags", tag)
