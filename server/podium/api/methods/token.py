"""token.*: authentication tokens for scripts and the CLI."""

from __future__ import annotations

import datetime
import fnmatch
import re

from ...errors import PodiumError
from ..context import Context
from ..params import anything, array, either, object_, string
from ..registry import api

_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|hour|d|day|w|week|mo|month|y|year)s?\s*$", re.IGNORECASE)
_DAY = 86400
_UNITS = {  # a unit's seconds, by its short and long names
    **dict.fromkeys(("s", "sec"), 1),
    **dict.fromkeys(("m", "min"), 60),
    **dict.fromkeys(("h", "hour"), 3600),
    **dict.fromkeys(("d", "day"), _DAY),
    **dict.fromkeys(("w", "week"), 7 * _DAY),
    **dict.fromkeys(("mo", "month"), 30 * _DAY),
    **dict.fromkeys(("y", "year"), 365 * _DAY),
}


class BadDuration(PodiumError):
    """A duration that cannot be read."""

    code = 10
    status = 400


def parse_duration(value: str | int) -> datetime.timedelta:
    """``30 days``, ``1 year``, ``12h`` or milliseconds (as Xen Orchestra takes them)."""
    if isinstance(value, int):
        return datetime.timedelta(milliseconds=value)
    m = _DURATION.match(value)
    if not m:
        raise BadDuration(f"expiresIn: {value!r} is not a duration (e.g. '30 days', '12h', '1 year')")
    return datetime.timedelta(seconds=int(m.group(1)) * _UNITS[m.group(2).lower()])


@api(
    "token.create",
    secret=("token",),
    params={
        "expiresIn": either("string", "integer", optional=True),
        "description": string(optional=True, minLength=0),
        "client": object_(optional=True, properties={"id": string(), "*": anything()}),
    },
)
async def create(
    ctx: Context,
    expiresIn: str | int | None = None,
    description: str = "",
    client: dict[str, str] | None = None,
) -> str:
    """A token for yourself (30 days unless expiresIn, at most a year); the same client gets its token back."""
    assert ctx.user is not None
    lifetime = parse_duration(expiresIn) if expiresIn is not None else None
    if lifetime is not None and lifetime < datetime.timedelta(minutes=1):
        raise BadDuration("expiresIn: at least one minute")
    return await ctx.services.tokens.create(ctx.user.id, lifetime, description, (client or {}).get("id"))


async def _delete(ctx: Context, tokens: list[str] | None, pattern: str | None, own: bool) -> int:
    assert ctx.user is not None
    owner = ctx.user.id if own else None
    count = 0
    for token in tokens or []:
        count += await ctx.services.tokens.delete(token, owner)
    if pattern is not None:
        for info in await ctx.services.tokens.list(owner):
            if fnmatch.fnmatchcase(info["description"], pattern):
                count += await ctx.services.tokens.delete(info["id"], owner)
    return count


_DELETE = {
    "tokens": array(string(), optional=True),
    "pattern": string(optional=True),
    "token": string(optional=True),
}


@api("token.delete", permission="admin", params=_DELETE, secret=("token", "tokens"))
async def delete(
    ctx: Context, tokens: list[str] | None = None, pattern: str | None = None, token: str | None = None
) -> int:
    """Delete tokens (given, or whose description matches a pattern); returns how many."""
    return await _delete(ctx, [*(tokens or []), *([token] if token else [])], pattern, own=False)


@api("token.deleteOwn", params=_DELETE, secret=("token", "tokens"))
async def delete_own(
    ctx: Context, tokens: list[str] | None = None, pattern: str | None = None, token: str | None = None
) -> int:
    """Delete some of your own tokens; returns how many."""
    return await _delete(ctx, [*(tokens or []), *([token] if token else [])], pattern, own=True)
