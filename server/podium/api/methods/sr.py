"""sr.*: rescanning and naming storage repositories."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Resolve, api
from .common import ID, NAMES, set_names, xapi


@api("sr.scan", params=ID, resolve=(Resolve("id", ("SR",), "operate"),))
async def scan(ctx: Context, id: dict[str, Any]) -> None:
    """Refresh an SR's view of its disks and space."""
    await xapi(ctx, id, "SR.scan")


@api("sr.set", params={**ID, **NAMES}, resolve=(Resolve("id", ("SR",), "administrate"),))
async def set_(
    ctx: Context, id: dict[str, Any], name_label: str | None = None, name_description: str | None = None
) -> None:
    """Rename or describe an SR."""
    await set_names(ctx, id, name_label, name_description)
