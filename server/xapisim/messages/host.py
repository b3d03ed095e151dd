"""pool.* and host.* messages that move the master role or change a host's state."""

from __future__ import annotations

from ..dispatch import Call, handler
from ..errors import Failure
from ..generic import record_of
from ..values import now


@handler("pool.designate_new_master")
async def designate_new_master(ctx: Call, host: str) -> str:
    """Hand the master role to another live host of the pool (sessions end, as xapi restarts)."""
    record_of(ctx, "host", host)
    if not ctx.host.is_master:
        raise Failure("HOST_IS_SLAVE", ctx.pool.master.address)
    target = ctx.pool.hosts[host]
    if not target.up:
        raise Failure("HOST_OFFLINE", host)
    if host != ctx.pool.master_ref:
        await ctx.work()
        ctx.pool.set_master(host)
    return ""


@handler("pool.emergency_transition_to_master")
async def emergency_transition_to_master(ctx: Call) -> str:
    """Make the host that received the call the master (used when the master is lost)."""
    if not ctx.host.is_master:
        ctx.pool.set_master(ctx.host.ref)
    return ""


@handler("pool.emergency_reset_master")
async def emergency_reset_master(ctx: Call, master_address: str) -> str:
    """Point a member at a new master; the address must be one of the pool's hosts."""
    if not any(h.address == master_address for h in ctx.pool.hosts.values()):
        raise Failure("HOST_CANNOT_CONNECT_TO_MASTER", master_address)
    return ""


@handler("host.get_servertime", "host.get_server_localtime")
async def get_servertime(ctx: Call, host: str) -> str:
    """The host's clock."""
    record_of(ctx, "host", host)
    return now()


@handler("host.disable")
async def disable(ctx: Call, host: str) -> str:
    """Stop new VMs from starting on the host."""
    record_of(ctx, "host", host)
    ctx.db.update("host", host, enabled=False)
    return ""


@handler("host.enable")
async def enable(ctx: Call, host: str) -> str:
    """Let VMs start on the host again."""
    record_of(ctx, "host", host)
    ctx.db.update("host", host, enabled=True)
    return ""
