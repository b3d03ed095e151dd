"""server.*: the pools Podium connects to (admins only)."""

from __future__ import annotations

from typing import Any

from ..context import Context
from ..params import boolean, string
from ..registry import api
from .common import ID

_OPTIONS = {
    "label": string(optional=True),
    "allowUnauthorized": boolean(optional=True),
    "fingerprint": string(optional=True),
    "readOnly": boolean(optional=True),
    "autoConnect": boolean(optional=True),
}
_NAMES = {"allowUnauthorized": "allow_unauthorized", "readOnly": "read_only", "autoConnect": "auto_connect"}


def _settings(values: dict[str, Any]) -> dict[str, Any]:
    return {_NAMES.get(k, k): v for k, v in values.items() if v is not None}


@api(
    "server.add",
    permission="admin",
    params={"host": string(), "username": string(), "password": string(), **_OPTIONS},
)
async def add(ctx: Context, host: str, username: str, password: str, **options: Any) -> str:
    """Add a pool by the address of its master (or any of its hosts); returns the server's id."""
    settings = _settings(options)
    settings.setdefault("auto_connect", True)
    return await ctx.services.servers.add(host, username, password, **settings)


@api("server.remove", permission="admin", params=ID)
async def remove(ctx: Context, id: str) -> bool:
    """Forget a server; its pool's objects leave."""
    await ctx.services.servers.remove(id)
    return True


@api("server.getAll", permission="admin", params={})
async def get_all(ctx: Context) -> list[dict[str, Any]]:
    """Every server with its status and last error (never its password)."""
    return await ctx.services.servers.get_all()


@api(
    "server.set",
    permission="admin",
    params={
        **ID,
        "host": string(optional=True),
        "username": string(optional=True),
        "password": string(optional=True),
        **_OPTIONS,
    },
)
async def set_(ctx: Context, id: str, **changes: Any) -> bool:
    """Change a server's settings (a connected one reconnects with them)."""
    await ctx.services.servers.set(id, **_settings(changes))
    return True


@api("server.enable", permission="admin", params=ID)
async def enable(ctx: Context, id: str) -> bool:
    """Connect a server."""
    await ctx.services.servers.enable(id)
    return True


@api("server.disable", permission="admin", params=ID)
async def disable(ctx: Context, id: str) -> bool:
    """Disconnect a server."""
    await ctx.services.servers.disable(id)
    return True
