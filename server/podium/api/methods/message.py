"""message.*: dismissing a pool's messages."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Resolve, api
from .common import ID, xapi


@api("message.delete", params=ID, resolve=(Resolve("id", ("message",), "administrate"),))
async def delete(ctx: Context, id: dict[str, Any]) -> None:
    """Dismiss a message."""
    await xapi(ctx, id, "message.destroy")
