"""task.*: stopping a task under way."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..registry import Resolve, api
from .common import ID, xapi


@api("task.cancel", params=ID, resolve=(Resolve("id", ("task",), "operate"),))
async def cancel(ctx: Context, id: dict[str, Any]) -> None:
    """Ask a task to stop; it ends as cancelled."""
    await xapi(ctx, id, "task.cancel")
