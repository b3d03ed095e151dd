"""pool.* and host.* messages that move the master role or change a host's state.

Hosts as xapi runs them (``xapi_host.ml``, ``xapi_host_helpers.ml``, ``message_forwarding.ml``,
``vm_evacuation.ml``):

- ``allowed_operations`` is recomputed whenever a host operation starts or ends and after disable and
  enable: ``reboot`` and ``shutdown`` need the host disabled (HOST_NOT_DISABLED), operations that bring
  VMs in and those that take them away exclude each other (OTHER_OPERATION_IN_PROGRESS). ``power_on`` is
  never offered (no power-on plugin here), nor ``apply_updates``.
- ``evacuate`` computes xapi's plan: every VM resident on the host, but the control domain, goes to
  another enabled live host that can run it (its SRs plugged there, its networks there) and has the
  memory for it (the biggest VMs first, each on the host with the most free memory); a VM that cannot
  move makes the whole call fail with its reason (NO_HOSTS_AVAILABLE, VM_REQUIRES_SR,
  HOST_NOT_ENOUGH_FREE_MEMORY naming the VM …), before anything moved. ``get_vms_which_prevent_evacuation``
  answers the same plan's failures. Evacuating does not disable the host: callers disable it first.
- ``reboot`` and ``shutdown`` need the host disabled; the call answers at once and the host is marked not
  live (``host_metrics.live``); then, as the host's own shutdown does, the VMs that prevent evacuation are
  shut down (cleanly when they can), the others migrated away, what still runs shut down; its listener
  closes (connections refused) and, when it was the master, every session ends (xapi never writes sessions
  to disk). A rebooted host comes back after ``boot_seconds``: live, ``enabled`` again, with new
  ``boot_time`` and ``agent_start_time``; while its xapi starts, ``host.enable`` answers HOST_STILL_BOOTING.
- ``restart_agent`` answers at once; the host's listener closes shortly after and reopens after a quarter
  of ``boot_seconds``: VMs keep running, a master's sessions end, and the host is enabled again (a
  ``host.disable`` is not remembered across an agent restart, unless a reboot is pending).
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from ..call import Call
from ..database import Database
from ..dispatch import handler
from ..errors import Failure
from ..generic import record_of
from ..operations import holding
from ..simulator import Host, Simulator
from ..values import NULL_REF, new_ref, now
from .vm import (
    boot_failure,
    check_operation,
    has_guest_features,
    host_free_memory,
    memory_needed,
    pool_migrate,
    shutdown,
)

log = logging.getLogger(__name__)


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


# --- allowed operations ----------------------------------------------------------------------------
_HOST_OPS = ("provision", "evacuate", "reboot", "shutdown", "vm_start", "vm_resume", "vm_migrate")
_BRINGING_IN = frozenset({"provision", "vm_resume", "vm_migrate"})
_TAKING_AWAY = frozenset({"evacuate", "reboot", "shutdown"})


def check_host_operation(db: Database, ref: str, host: dict[str, Any], op: str) -> Failure | None:
    """The failure xapi raises for ``op`` on this host now, or None (the first reason found wins)."""
    current = list(host["current_operations"].values())
    if current and (
        (op in _BRINGING_IN and _TAKING_AWAY.intersection(current))
        or (op in _TAKING_AWAY and _BRINGING_IN.intersection(current))
    ):
        return Failure("OTHER_OPERATION_IN_PROGRESS", "host", ref, current[0])
    for running, blocked in (("reboot", "shutdown"), ("shutdown", "reboot"), ("provision", "provision")):
        if op == blocked and running in current:
            return Failure("OTHER_OPERATION_IN_PROGRESS", "host", ref, running)
    if op in ("reboot", "shutdown") and host["enabled"]:
        return Failure("HOST_NOT_DISABLED")
    return None


def update_host_allowed_operations(db: Database, ref: str) -> None:
    """Recompute a host's ``allowed_operations``."""
    host = db.get("host", ref)
    if host is not None:
        allowed = [op for op in _HOST_OPS if check_host_operation(db, ref, host, op) is None]
        db.update("host", ref, allowed_operations=allowed)


def host_operation(ctx: Call, ref: str, op: str) -> AbstractAsyncContextManager[dict[str, Any]]:
    """Check ``op`` on the host and hold it in its current_operations while it runs."""
    return holding(ctx, "host", ref, op, check_host_operation, update_host_allowed_operations)


def _reachable(ctx: Call, ref: str) -> Host:
    """The host, when the master can forward a call to it (``do_op_on``): HOST_OFFLINE when it is down or
    known dead; the host the call arrived at is live by definition."""
    record = record_of(ctx, "host", ref)
    host = ctx.pool.hosts[ref]
    metrics = ctx.db.get("host_metrics", record["metrics"])
    if ref != ctx.host.ref and (not host.up or (metrics is not None and not metrics["live"])):
        raise Failure("HOST_OFFLINE", ref)
    return host


def _sub(ctx: Call, method: str) -> Call:
    """A call xapi makes on its own while it carries out another one: its own key, no task of its own."""
    return Call(ctx.sim, ctx.pool, ctx.host, method)


# --- enable, disable ----------------------------------------------------------------------------------
@handler("host.disable")
async def disable(ctx: Call, host: str) -> str:
    """Stop new VMs from starting on the host (those running there keep running)."""
    _reachable(ctx, host)
    ctx.db.update("host", host, enabled=False)
    update_host_allowed_operations(ctx.db, host)
    return ""


@handler("host.enable")
async def enable(ctx: Call, host: str) -> str:
    """Let VMs start on the host again; not while its xapi starts, nor when a reboot is pending."""
    target = _reachable(ctx, host)
    if not target.record["enabled"]:
        if target.booting:
            raise Failure("HOST_STILL_BOOTING")
        if target.pending:
            raise Failure("HOST_DISABLED_UNTIL_REBOOT")
        ctx.db.update("host", host, enabled=True)
    update_host_allowed_operations(ctx.db, host)
    return ""


@handler("host.compute_free_memory")
async def compute_free_memory(ctx: Call, host: str) -> int:
    """The memory left on the host for more VMs."""
    record_of(ctx, "host", host)
    return host_free_memory(ctx.db, host)


# --- evacuation ---------------------------------------------------------------------------------------
Plan = dict[str, "str | Failure"]  # per resident VM: the host it goes to, or why it cannot move


def evacuation_plan(ctx: Call, ref: str) -> Plan:
    """Where each VM resident on the host would go (xapi's ``compute_evacuation_plan_no_wlb``)."""
    db = ctx.db
    hosts = db.records("host")
    vms = [
        vm
        for vm in hosts[ref]["resident_VMs"]
        if (rec := db.get("VM", vm)) is not None and not rec["is_control_domain"]
    ]
    targets = [
        h for h in ctx.pool.hosts if h != ref and h in hosts and hosts[h]["enabled"] and ctx.pool.hosts[h].up
    ]
    if not targets:
        return {vm: Failure("NO_HOSTS_AVAILABLE", vm) for vm in vms}
    plan: Plan = {}
    movable = []
    for vm in vms:
        rec = db.records("VM")[vm]
        failure = Failure("VM_MISSING_PV_DRIVERS", vm) if not has_guest_features(db, rec) else None
        failure = failure or check_operation(db, vm, rec, "pool_migrate")
        if failure is None:  # it must be able to run on every one of the hosts, as in xapi
            failure = next((f for t in targets if (f := boot_failure(ctx, vm, rec, t, memory=False))), None)
        if failure is not None:
            plan[vm] = failure
        else:
            movable.append(vm)
    free = {h: host_free_memory(db, h) for h in targets}
    for vm in sorted(movable, key=lambda v: memory_needed(db.records("VM")[v]), reverse=True):
        needed = memory_needed(db.records("VM")[vm])
        best = max(targets, key=lambda h: free[h])
        if needed > free[best]:
            plan[vm] = Failure("HOST_NOT_ENOUGH_FREE_MEMORY", vm)  # xapi's plan names the VM, not sizes
        else:
            free[best] -= needed
            plan[vm] = best
    return {vm: plan[vm] for vm in vms}


async def _evacuate(ctx: Call, ref: str) -> None:
    plan = evacuation_plan(ctx, ref)
    for outcome in plan.values():
        if isinstance(outcome, Failure):
            raise outcome
    for done, (vm, target) in enumerate(plan.items(), 1):
        ctx.check_cancelled()
        await pool_migrate(_sub(ctx, "VM.pool_migrate"), vm, str(target), {"live": "true"})
        if ctx.task and ctx.db.get("task", ctx.task):
            ctx.db.update("task", ctx.task, progress=round(done / len(plan), 2))
    vms = ctx.db.records("VM")
    left = [v for v in ctx.db.records("host")[ref]["resident_VMs"] if not vms[v]["is_control_domain"]]
    if left:  # a VM started there meanwhile: xapi's final assertion fails
        raise Failure("INTERNAL_ERROR", f"VMs still resident on the host after its evacuation: {left}")


@handler("host.evacuate")
async def evacuate(ctx: Call, host: str, network: str, evacuate_batch_size: int) -> str:
    """Migrate every VM off the host, or fail with the reason one of them cannot move.

    The VMs move one after the other (xapi moves them in batches; the batch size is accepted, not used).
    """
    record_of(ctx, "host", host)
    if network != NULL_REF:
        record_of(ctx, "network", network)
    async with host_operation(ctx, host, "evacuate"):
        await _evacuate(ctx, host)
    return ""


@handler("host.get_vms_which_prevent_evacuation")
async def get_vms_which_prevent_evacuation(ctx: Call, host: str) -> dict[str, list[str]]:
    """The VMs that cannot move, each with its error (code then parameters)."""
    record_of(ctx, "host", host)
    plan = evacuation_plan(ctx, host)
    return {vm: f.description for vm, f in plan.items() if isinstance(f, Failure)}


@handler("host.assert_can_evacuate")
async def assert_can_evacuate(ctx: Call, host: str) -> str:
    """CANNOT_EVACUATE_HOST with every VM's reason (``code,params|code,params``), or nothing."""
    record_of(ctx, "host", host)
    errors = [",".join(f.description) for f in evacuation_plan(ctx, host).values() if isinstance(f, Failure)]
    if errors:
        raise Failure("CANNOT_EVACUATE_HOST", "|".join(errors))
    return ""


# --- reboot, shutdown, agent restart ------------------------------------------------------------------
@handler("host.reboot", "host.shutdown")
async def reboot(ctx: Call, host: str) -> str:
    """Reboot or shut down a disabled host: answered at once, carried out in the background."""
    op = ctx.method.rsplit(".", 1)[1]
    target = _reachable(ctx, host)
    async with host_operation(ctx, host, op):
        await ctx.work(steps=1)
        # "Host is rebooting": a task of the host's own holds the operation until it is back
        ops = {**target.record["current_operations"], new_ref(): op}
        ctx.db.update("host", host, current_operations=ops)
        target.pending = op
    metrics = target.record["metrics"]
    if ctx.db.get("host_metrics", metrics) is not None:
        ctx.db.update("host_metrics", metrics, live=False)  # the master counts it as dead from now on
    update_host_allowed_operations(ctx.db, host)
    ctx.pool.spawn(_power_off(_sub(ctx, f"host.{op}"), target, op == "reboot"), name=f"{op} {target.name}")
    return ""


async def _power_off(ctx: Call, host: Host, reboot: bool) -> None:
    try:
        await asyncio.sleep(ctx.sim.op_seconds)  # xapi waits a little, so that the call is answered
        await _ensure_no_vms(ctx, host.ref)
        await _go_down(ctx.sim, host)
        if reboot:
            await asyncio.sleep(ctx.sim.boot_seconds)
            await boot(ctx.sim, host, rebooted=True)
        else:
            host.powered_off = True
    except Exception:  # a simulator bug: say so, the pool stays served
        log.exception("%s of host %s failed", "reboot" if reboot else "shutdown", host.name)


async def _ensure_no_vms(ctx: Call, ref: str) -> None:
    """What a host does before it powers off (``vm_evacuation.ml``): the VMs that cannot move are shut
    down, the others migrated away, and whatever still runs there shut down. A VM whose other_config has
    ``auto_poweroff`` manages its own power-off and is left alone."""
    db = ctx.db

    def own_poweroff(vm: str) -> bool:
        rec = db.get("VM", vm)
        return rec is None or "auto_poweroff" in rec["other_config"]

    plan = evacuation_plan(ctx, ref)
    await _shut_down(ctx, [vm for vm, p in plan.items() if isinstance(p, Failure) and not own_poweroff(vm)])
    try:
        await _evacuate(ctx, ref)
    except Failure as f:
        log.info("host %s: evacuation before power-off failed: %s", ref, f)
    running = [
        vm
        for vm in db.records("host")[ref]["resident_VMs"]
        if not db.records("VM")[vm]["is_control_domain"]
        and db.records("VM")[vm]["power_state"] == "Running"
        and not own_poweroff(vm)
    ]
    await _shut_down(ctx, running)


async def _shut_down(ctx: Call, vms: list[str]) -> None:
    """Shut VMs down together: cleanly when they allow it, else (or when that fails) at once."""

    async def one(vm: str) -> None:
        rec = ctx.db.get("VM", vm)
        if rec is not None and "clean_shutdown" in rec["allowed_operations"]:
            try:
                await shutdown(_sub(ctx, "VM.clean_shutdown"), vm)
                return
            except Failure as f:
                log.info("clean shutdown of %s failed: %s", vm, f)
        rec = ctx.db.get("VM", vm)
        if rec is not None and rec["power_state"] in ("Running", "Paused"):
            try:
                await shutdown(_sub(ctx, "VM.hard_shutdown"), vm)
            except Failure as f:
                log.info("hard shutdown of %s failed: %s", vm, f)

    await asyncio.gather(*(one(vm) for vm in vms))


async def _go_down(sim: Simulator, host: Host) -> None:
    """The host's xapi stops: its listener closes; a master's sessions are gone."""
    if sim.switch is not None:
        await sim.switch.stop_host(host)
    host.up = False
    if host.is_master:
        host.pool.end_sessions()
    log.info("host %s is down", host.name)


async def boot(sim: Simulator, host: Host, rebooted: bool) -> None:
    """The host's xapi starts (after a reboot, a power-on or an agent restart), then enables the host."""
    db = host.pool.db
    host.booting, host.powered_off = True, False
    if sim.switch is not None:
        await sim.switch.start_host(host)
    host.up = True
    stamp = f"{time.time():.0f}."  # as xapi writes these (an OCaml float)
    other = {**host.record["other_config"], "agent_start_time": stamp}
    if rebooted:
        other["boot_time"] = stamp
        host.pending = ""
    db.update("host", host.ref, other_config=other, enabled=False)
    await asyncio.sleep(sim.op_seconds)  # start-up: HOST_STILL_BOOTING meanwhile
    host.booting = False
    fields: dict[str, Any] = {"enabled": not host.pending}
    if rebooted:
        fields["current_operations"] = {}  # the "Host is rebooting" task ended with the old xapi
    db.update("host", host.ref, **fields)
    metrics = host.record["metrics"]
    if db.get("host_metrics", metrics) is not None:
        db.update("host_metrics", metrics, live=True, last_updated=now())
    update_host_allowed_operations(db, host.ref)
    log.info("host %s is up%s", host.name, " (rebooted)" if rebooted else "")


@handler("host.restart_agent")
async def restart_agent(ctx: Call, host: str) -> str:
    """Restart the host's xapi: answered at once; the host is unreachable for a while, then back."""
    target = _reachable(ctx, host)
    ctx.pool.spawn(_restart_agent(ctx.sim, target), name=f"restart_agent {target.name}")
    return ""


async def _restart_agent(sim: Simulator, host: Host) -> None:
    try:
        await asyncio.sleep(sim.op_seconds)  # xapi's fuse: the call is answered first
        await _go_down(sim, host)
        await asyncio.sleep(sim.boot_seconds / 4)
        await boot(sim, host, rebooted=False)
    except Exception:  # a simulator bug: say so, the pool stays served
        log.exception("agent restart of host %s failed", host.name)
