"""xo.*: the objects of every connected pool that the user may see."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import api


def matches(obj: dict[str, Any], pattern: dict[str, Any]) -> bool:
    """Whether an object has every property of a pattern (nested patterns for nested objects)."""
    for key, want in pattern.items():
        have = obj.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            if not matches(have, want):
                return False
        elif have != want:
            return False
    return True


@api(
    "xo.getAllObjects",
    params={
        "filter": {"type": "object", "optional": True, "description": "properties the objects must have"},
        "limit": {"type": "number", "optional": True, "minimum": 0},
    },
)
async def get_all_objects(
    ctx: Context, filter: dict[str, Any] | None = None, limit: int | None = None
) -> dict[str, Any]:
    """Every object the user may see, by id (filtered, limited)."""
    out: dict[str, Any] = {}
    for id_, obj in ctx.services.objects.objects.items():
        if limit is not None and len(out) >= limit:
            break
        if ctx.can_see(obj) and (filter is None or matches(obj, filter)):
            out[id_] = obj
    return out
