"""session.*: login (HOST_IS_SLAVE on members, a delayed SESSION_AUTHENTICATION_FAILED), logout."""

from __future__ import annotations

import asyncio
import logging

from ..call import Call
from ..dispatch import handler
from ..errors import Failure

log = logging.getLogger(__name__)


@handler("session.login_with_password")
async def login_with_password(ctx: Call, uname: str, pwd: str, version: str, originator: str) -> str:
    """Log in on the master; a member names the master instead, before checking credentials."""
    if not ctx.host.is_master:
        raise Failure("HOST_IS_SLAVE", ctx.pool.master.address)
    return await _login(ctx, uname, pwd, originator)


@handler("session.slave_local_login_with_password")
async def slave_local_login(ctx: Call, uname: str, pwd: str) -> str:
    """Log in on any host, master or not (for emergency operations on a member)."""
    return await _login(ctx, uname, pwd, "")


async def _login(ctx: Call, uname: str, pwd: str, originator: str) -> str:
    if not ctx.sim.credentials_ok(uname, pwd):
        log.info("failed login for %r on %s", uname, ctx.host.address)
        await asyncio.sleep(ctx.sim.auth_failure_delay)  # xapi slows down password guessing
        raise Failure("SESSION_AUTHENTICATION_FAILED", uname, "Authentication failure")
    return ctx.sim.login(ctx.pool, ctx.host, uname, pwd, originator)


@handler("session.logout")
async def logout(ctx: Call) -> str:
    """End the caller's session; its waiting event calls end with SESSION_INVALID."""
    assert ctx.session is not None
    ctx.db.destroy("session", ctx.session)
    ctx.db.wake()
    return ""
