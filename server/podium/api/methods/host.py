"""host.*: enabling, disabling and naming hosts (admins of the host)."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Resolve, api
from .common import NAMES, set_names, xapi

_HOST = (Resolve("id", ("host",), "administrate"),)


@api("host.enable", params={"id": {"type": "string"}}, resolve=_HOST)
async def enable(ctx: Context, id: dict[str, Any]) -> None:
    """Let VMs start on a host again."""
    await xapi(ctx, id, "host.enable")


@api("host.disable", params={"id": {"type": "string"}}, resolve=_HOST)
async def disable(ctx: Context, id: dict[str, Any]) -> None:
    """Stop new VMs from starting on a host."""
    await xapi(ctx, id, "host.disable")


@api("host.set", params={"id": {"type": "string"}, **NAMES}, resolve=_HOST)
async def set_(
    ctx: Context, id: dict[str, Any], name_label: str | None = None, name_description: str | None = None
) -> None:
    """Rename or describe a host."""
    await set_names(ctx, id, name_label, name_description)
