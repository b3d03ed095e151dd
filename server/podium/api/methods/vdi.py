"""vdi.*: naming, growing and deleting disks."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..errors import invalid
from ..params import integer
from ..registry import Resolve, api
from .common import ID, NAMES, set_names, xapi

_VDI = (Resolve("id", ("VDI", "VDI-snapshot", "VDI-unmanaged"), "administrate"),)


@api("vdi.set", params={**ID, **NAMES, "size": integer(optional=True, minimum=0)}, resolve=_VDI)
async def set_(
    ctx: Context,
    id: dict[str, Any],
    name_label: str | None = None,
    name_description: str | None = None,
    size: int | None = None,
) -> None:
    """Rename, describe or grow a disk (shrinking is refused)."""
    await set_names(ctx, id, name_label, name_description)
    if size is not None and size != id["size"]:
        if size < id["size"]:
            raise invalid("size", "a disk cannot shrink", "minimum", {"limit": id["size"]})
        await xapi(ctx, id, "VDI.resize", size)


@api("vdi.delete", params=ID, resolve=_VDI)
async def delete(ctx: Context, id: dict[str, Any]) -> None:
    """Delete a disk that no running VM uses."""
    await xapi(ctx, id, "VDI.destroy")
