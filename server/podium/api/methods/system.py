"""system.*: what the API offers and which server answers (no sign-in needed)."""

from __future__ import annotations

import fnmatch
from typing import Any

from ..context import Context
from ..errors import NoSuchObject
from ..params import integer, string
from ..registry import METHODS, api


@api("system.getMethodsInfo", permission="none", params={})
async def get_methods_info(ctx: Context) -> dict[str, Any]:
    """Every method with its description, parameters and permission."""
    return {name: m.info() for name, m in sorted(METHODS.items())}


@api("system.listMethods", permission="none", params={"pattern": string(optional=True)})
async def list_methods(ctx: Context, pattern: str | None = None) -> list[str]:
    """The names of the methods (matching a glob pattern, when given)."""
    return sorted(n for n in METHODS if pattern is None or fnmatch.fnmatchcase(n, pattern))


@api("system.methodSignature", permission="none", params={"method": string()})
async def method_signature(ctx: Context, method: str) -> list[dict[str, Any]]:
    """One method's name, description, parameters and permission (in a one-element list, as XO)."""
    if method not in METHODS:
        raise NoSuchObject(method, "method")
    return [{"name": method, **METHODS[method].info()}]


@api("system.getServerVersion", permission="none", params={})
async def get_server_version(ctx: Context) -> str:
    """Podium's version."""
    return ctx.services.version


@api("system.getVersion", permission="none", params={})
async def get_version(ctx: Context) -> str:
    """The API's version, as xo-server reports it."""
    return "0.1"


@api(
    "audit.getRecords",
    permission="admin",
    params={"limit": integer(default=100, minimum=1, maximum=1000), "before": integer(optional=True)},
)
async def get_audit_records(
    ctx: Context, limit: int = 100, before: int | None = None
) -> list[dict[str, Any]]:
    """The newest audit records: who called what (secrets redacted), the outcome, how long it took."""
    return await ctx.services.audit.records(limit, before)
