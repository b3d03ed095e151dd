"""user.*: accounts (admins manage them; everyone may change their own password)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from ...auth import InvalidCredentials
from ...auth.users import PERMISSIONS, UserError
from ...db import Group, Token, User
from ..context import Context
from ..errors import NoSuchObject
from ..params import object_, string
from ..registry import api
from .common import ID
from .session import public_user

_PERMISSION = string(enum=list(PERMISSIONS), optional=True)


@api(
    "user.create",
    permission="admin",
    params={"email": string(), "password": string(), "permission": _PERMISSION},
)
async def create(ctx: Context, email: str, password: str, permission: str = "none") -> str:
    """Create a user; returns their id."""
    user = await ctx.services.users.create(email, password, permission)
    return user.id


@api("user.delete", permission="admin", params=ID)
async def delete(ctx: Context, id: str) -> None:
    """Delete a user, with their tokens and ACLs."""
    if ctx.user is not None and id == ctx.user.id:
        raise UserError("you cannot delete yourself")
    db = ctx.services.db
    async with db.session() as s, s.begin():
        user = await s.get(User, id)
        if user is None:
            raise NoSuchObject(id, "user")
        await s.delete(user)
        for token in (await s.scalars(select(Token).where(Token.user_id == id))).all():
            await s.delete(token)
        for group in (await s.scalars(select(Group))).all():
            if id in (group.users or []):
                group.users = [u for u in group.users if u != id]
    await ctx.services.acls.forget_subject(id)
    await ctx.services.rights_changed()


@api("user.getAll", permission="admin", params={})
async def get_all(ctx: Context) -> list[dict[str, Any]]:
    """Every user (never a password)."""
    async with ctx.services.db.session() as s:
        users = (await s.scalars(select(User).order_by(User.email))).all()
    return [await public_user(ctx, u) for u in users]


@api(
    "user.set",
    permission="admin",
    params={
        **ID,
        "email": string(optional=True),
        "password": string(optional=True),
        "permission": _PERMISSION,
        "preferences": object_(optional=True),
    },
)
async def set_(
    ctx: Context,
    id: str,
    email: str | None = None,
    password: str | None = None,
    permission: str | None = None,
    preferences: dict[str, Any] | None = None,
) -> None:
    """Change a user's e-mail, password, permission or preferences."""
    if ctx.user is not None and id == ctx.user.id and permission not in (None, "admin"):
        raise UserError("you cannot take away your own admin permission")
    async with ctx.services.db.session() as s, s.begin():
        user = await s.get(User, id)
        if user is None:
            raise NoSuchObject(id, "user")
        if email is not None:
            user.email = email
        if permission is not None:
            user.permission = permission
        if preferences is not None:
            user.preferences = preferences
    if password is not None:
        await ctx.services.users.set_password(id, password)
    await ctx.services.rights_changed()


@api(
    "user.changePassword",
    params={"oldPassword": string(), "newPassword": string()},
    secret=("oldPassword", "newPassword"),
)
async def change_password(ctx: Context, oldPassword: str, newPassword: str) -> None:
    """Change your own password (the old one is checked)."""
    assert ctx.user is not None
    try:
        await ctx.services.users.authenticate(ctx.user.email, oldPassword)
    except InvalidCredentials:
        raise InvalidCredentials("the old password is wrong") from None
    await ctx.services.users.set_password(ctx.user.id, newPassword)


@api("user.getAuthenticationTokens", params={})
async def get_authentication_tokens(ctx: Context) -> list[dict[str, Any]]:
    """Your tokens (ids, descriptions, expiry, last use: never the tokens themselves)."""
    assert ctx.user is not None
    return await ctx.services.tokens.list(ctx.user.id)
