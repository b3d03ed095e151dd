"""group.*: sets of users, subjects of ACLs (admins only)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ...auth.acls import AclError
from ...db import Group, User
from ..context import Context
from ..errors import NoSuchObject
from ..params import array, string
from ..registry import api
from .common import ID


def _public(group: Group) -> dict[str, Any]:
    return {"id": group.id, "name": group.name, "users": list(group.users or [])}


async def _users_exist(ctx: Context, ids: list[str]) -> None:
    async with ctx.services.db.session() as s:
        for user_id in ids:
            if await s.get(User, user_id) is None:
                raise NoSuchObject(user_id, "user")


@api("group.create", permission="admin", params={"name": string()})
async def create(ctx: Context, name: str) -> str:
    """Create a group; returns its id."""
    async with ctx.services.db.session() as s, s.begin():
        if await s.scalar(select(Group).where(Group.name == name)) is not None:
            raise AclError(f"name: a group {name} already exists")
        group = Group(name=name, users=[])
        s.add(group)
    return group.id


@api("group.delete", permission="admin", params=ID)
async def delete(ctx: Context, id: str) -> None:
    """Delete a group and its ACLs."""
    async with ctx.services.db.session() as s, s.begin():
        group = await s.get(Group, id)
        if group is None:
            raise NoSuchObject(id, "group")
        await s.delete(group)
    await ctx.services.acls.forget_subject(id)
    await ctx.services.rights_changed()


@api("group.getAll", permission="admin", params={})
async def get_all(ctx: Context) -> list[dict[str, Any]]:
    """Every group with its users."""
    async with ctx.services.db.session() as s:
        return [_public(g) for g in (await s.scalars(select(Group).order_by(Group.name))).all()]


async def _change(ctx: Context, id: str, users: Any = None, name: str | None = None) -> None:
    async with ctx.services.db.session() as s, s.begin():
        group = await s.get(Group, id)
        if group is None:
            raise NoSuchObject(id, "group")
        if users is not None:
            group.users = users(list(group.users or []))
        if name is not None:
            group.name = name
    await ctx.services.rights_changed()


@api("group.set", permission="admin", params={**ID, "name": string()})
async def set_(ctx: Context, id: str, name: str) -> None:
    """Rename a group."""
    await _change(ctx, id, name=name)


@api("group.setUsers", permission="admin", params={**ID, "userIds": array(string())})
async def set_users(ctx: Context, id: str, userIds: list[str]) -> None:
    """Make a group exactly these users."""
    await _users_exist(ctx, userIds)
    await _change(ctx, id, users=lambda _: list(dict.fromkeys(userIds)))


@api("group.addUser", permission="admin", params={**ID, "userId": string()})
async def add_user(ctx: Context, id: str, userId: str) -> None:
    """Add a user to a group."""
    await _users_exist(ctx, [userId])
    await _change(ctx, id, users=lambda users: users if userId in users else [*users, userId])


@api("group.removeUser", permission="admin", params={**ID, "userId": string()})
async def remove_user(ctx: Context, id: str, userId: str) -> None:
    """Remove a user from a group."""
    await _change(ctx, id, users=lambda users: [u for u in users if u != userId])
