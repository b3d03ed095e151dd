"""session.*: sign in with a password or a token, who am I, sign out."""

from __future__ import annotations

from typing import Any

from ...auth import InvalidCredentials
from ...auth.users import public
from ...db import User
from ..context import Context
from ..params import string
from ..registry import NULL, api


async def public_user(ctx: Context, user: User) -> dict[str, Any]:
    """A user as the API shows it, with their groups."""
    return {**public(user), "groups": await ctx.services.acls.groups_of(user.id)}


async def _signed_in(ctx: Context, user_id: str) -> dict[str, Any]:
    user = await ctx.services.users.get(user_id)
    if user is None:
        raise InvalidCredentials()
    ctx.user = user
    await ctx.load_rights()
    for fn in ctx.on_sign_in:
        fn(ctx)
    return await public_user(ctx, user)


@api(
    "session.signIn",
    permission="none",
    params={
        "email": string(optional=True),
        "username": string(optional=True),
        "password": string(optional=True),
        "token": string(optional=True),
        "otp": string(optional=True, description="one-time code of two-factor sign-in"),
    },
    secret=("password", "token", "otp"),
)
async def sign_in(
    ctx: Context,
    email: str | None = None,
    username: str | None = None,
    password: str | None = None,
    token: str | None = None,
    otp: str | None = None,
) -> dict[str, Any]:
    """Sign in with an e-mail (or user name) and password, or with a token; returns the user.

    As in Xen Orchestra, ``otp`` is checked only for users with two-factor sign-in; Podium has no such
    users yet, so xo-cli's ``--otp`` is accepted and has nothing to check.
    """
    if token is not None:
        return await _signed_in(ctx, await ctx.services.tokens.check(token))
    login = email if email is not None else username
    if login is None or password is None:
        raise InvalidCredentials("give email (or username) and password, or a token")
    user = await ctx.services.users.authenticate(login, password)
    return await _signed_in(ctx, user.id)


@api("session.signInWithPassword", permission="none", params={"email": string(), "password": string()})
async def sign_in_with_password(ctx: Context, email: str, password: str) -> dict[str, Any]:
    """Sign in with an e-mail and password (older spelling)."""
    return await sign_in(ctx, email=email, password=password)


@api("session.signInWithToken", permission="none", params={"token": string()}, secret=("token",))
async def sign_in_with_token(ctx: Context, token: str) -> dict[str, Any]:
    """Sign in with a token (older spelling)."""
    return await sign_in(ctx, token=token)


@api("session.getUser", permission="none", params={})
async def get_user(ctx: Context) -> Any:
    """The signed-in user (null when nobody is signed in on this connection)."""
    return await public_user(ctx, ctx.user) if ctx.user is not None else NULL


@api("session.signOut", params={})
async def sign_out(ctx: Context) -> bool:
    """Forget the signed-in user on this connection."""
    ctx.user = None
    ctx.perms = {}
    for fn in ctx.on_sign_out:
        fn(ctx)
    return True
