"""acl.*: who may do what on which object (admins manage them; everyone may read their own rights)."""

from __future__ import annotations

from typing import Any

from ...auth import ROLES
from ..context import Context
from ..params import string
from ..registry import api

_ACL = {"subject": string(), "object": string(), "action": string()}


@api("acl.add", permission="admin", params=_ACL)
async def add(ctx: Context, subject: str, object: str, action: str) -> None:
    """Give a user or group a role (viewer, operator, admin) on an object and everything under it."""
    await ctx.services.acls.add(subject, object, action)
    await ctx.services.rights_changed()


@api("acl.remove", permission="admin", params=_ACL)
async def remove(ctx: Context, subject: str, object: str, action: str) -> None:
    """Take a role away."""
    await ctx.services.acls.remove(subject, object, action)
    await ctx.services.rights_changed()


@api("acl.get", permission="admin", params={})
async def get(ctx: Context) -> list[dict[str, str]]:
    """Every ACL."""
    return await ctx.services.acls.all()


@api("acl.getCurrentPermissions", params={})
async def get_current_permissions(ctx: Context) -> dict[str, dict[str, bool]]:
    """Your own rights: object id → actions."""
    return {obj: dict.fromkeys(sorted(actions), True) for obj, actions in ctx.perms.items()}


@api("acl.getRoles", params={})
async def get_roles(ctx: Context) -> list[dict[str, Any]]:
    """The roles and the actions each allows."""
    return [{"id": r, "name": r.capitalize(), "permissions": list(p)} for r, p in ROLES.items()]
