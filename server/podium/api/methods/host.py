"""host.*: enabling, disabling and naming hosts; maintenance mode, reboots, agent restarts and power-off.

As Xen Orchestra does them (xo-server's ``api/host.mjs``, its XAPI mixin's ``clearHost``, ``rebootHost``,
``shutdownHost``, ``emergencyShutdownHost``, and ``@xen-orchestra/xapi``'s ``restartAgent`` and
``smartReboot``):

- ``host.setMaintenanceMode``: on, the host is disabled, then evacuated (``Async.host.evacuate``, through
  the pool's ``xo:migrationNetwork`` when it names one); when a VM cannot move, the host is enabled again
  and the pool's refusal reported. Off, the host is enabled. A pool master stays master: Xen Orchestra
  designates no new one (xapi evacuates a master like any other host; ``pool.designate_new_master`` is
  how the role moves).
- ``host.restart``: the same, then ``host.reboot``; with ``force`` a failed evacuation is no obstacle (the
  host's own shutdown stops what could not move). It returns once the reboot is under way, not once the
  host is back, as Xen Orchestra's. ``suspendResidentVms`` suspends the host's VMs instead, reboots, waits
  for the host to be back and resumes them.
- ``host.restartAgent`` (and its old name ``host.restart_agent``) returns once the host's agent is back.
- ``host.stop``: the evacuation (or, with ``bypassEvacuate``, only the disabling), then ``host.shutdown``.
  ``host.emergencyShutdownHost`` disables the host, suspends what it can and shuts the host down.

``bypassBackupCheck`` is accepted and has nothing to bypass: Podium runs no backups that a reboot could
break. Actions on the host as in Xen Orchestra: ``operate`` to restart or stop it, ``administrate`` for
the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from ...xapi import XapiError, XapiFailure
from ..context import Context
from ..errors import ApiError, IncorrectState
from ..params import boolean, string
from ..registry import Resolve, api
from .common import ID, NAMES, set_names, xapi, xapi_task

log = logging.getLogger(__name__)

_HOST = (Resolve("id", ("host",), "administrate"),)
_OPERATE = (Resolve("id", ("host",), "operate"),)
_OPTIONAL_FLAG = boolean(optional=True)
AGENT_RESTART_TIMEOUT = 600.0  # Xen Orchestra waits without limit; a host not back in 10 minutes is lost


@api("host.enable", params=ID, resolve=_HOST)
async def enable(ctx: Context, id: dict[str, Any]) -> None:
    """Let VMs start on a host again."""
    await xapi(ctx, id, "host.enable")


@api("host.disable", params=ID, resolve=_HOST)
async def disable(ctx: Context, id: dict[str, Any]) -> None:
    """Stop new VMs from starting on a host."""
    await xapi(ctx, id, "host.disable")


@api("host.set", params={**ID, **NAMES}, resolve=_HOST)
async def set_(
    ctx: Context, id: dict[str, Any], name_label: str | None = None, name_description: str | None = None
) -> None:
    """Rename or describe a host."""
    await set_names(ctx, id, name_label, name_description)


# --- maintenance mode ------------------------------------------------------------------------------
async def clear_host(ctx: Context, host: dict[str, Any], force: bool = False) -> None:
    """Disable the host and migrate its VMs away; when that fails, enable it again and raise, unless
    ``force``. (The pool's migration network is looked up first: Xen Orchestra disables the host before,
    and leaves it disabled when the network is gone.)"""
    args = []
    pool = ctx.services.objects.get(host["$poolId"]) or {}
    network_id = (pool.get("otherConfig") or {}).get("xo:migrationNetwork")
    if network_id is not None:
        network = ctx.services.objects.get(network_id)
        if network is None or network["type"] != "network":
            raise ApiError(f"could not find migration network {network_id}")
        args.append(network["_xapiRef"])
    await xapi(ctx, host, "host.disable")
    try:
        try:
            await xapi_task(ctx, host, "host.evacuate", *args)
        except XapiFailure as e:
            if not args or e.xapi_code != "MESSAGE_PARAMETER_COUNT_MISMATCH":
                raise
            await xapi_task(ctx, host, "host.evacuate")  # a XAPI too old to take a migration network
    except XapiError as e:
        if force:
            log.warning("host %s: evacuation failed, going on as forced: %s", host["id"], e.message)
            return
        await xapi(ctx, host, "host.enable")
        raise


@api("host.setMaintenanceMode", params={**ID, "maintenance": boolean()}, resolve=_HOST)
async def set_maintenance_mode(ctx: Context, id: dict[str, Any], maintenance: bool) -> None:
    """Put a host in maintenance mode (disabled, its VMs moved to other hosts) or take it out (enabled)."""
    if maintenance:
        await clear_host(ctx, id)
    else:
        await xapi(ctx, id, "host.enable")


# --- reboot ----------------------------------------------------------------------------------------
def _version(text: Any) -> tuple[int, ...]:
    parts = []
    for word in str(text or "").split("."):
        digits = "".join(c for c in word if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _check_versions(ctx: Context, host: dict[str, Any]) -> None:
    """During a rolling pool update a member that needs a reboot waits for its master to be done first.

    Xen Orchestra also refuses while the master misses patches; Podium does not list patches yet.
    """
    if not host.get("rebootRequired"):
        return
    pool = ctx.services.objects.get(host["$poolId"]) or {}
    master = ctx.services.objects.get(pool.get("master") or "")
    if master is None or master["id"] == host["id"]:
        return
    ours, theirs = _version(host.get("version")), _version(master.get("version"))
    if theirs < ours or (theirs == ours and master.get("rebootRequired")):
        raise IncorrectState(host["rebootRequired"], False, master["id"], "rebootRequired")


@api(
    "host.restart",
    params={
        **ID,
        "force": _OPTIONAL_FLAG,
        "bypassBackupCheck": _OPTIONAL_FLAG,
        "bypassBlockedSuspend": _OPTIONAL_FLAG,
        "bypassCurrentVmCheck": _OPTIONAL_FLAG,
        "bypassVersionCheck": _OPTIONAL_FLAG,
        "suspendResidentVms": boolean(default=False),
    },
    resolve=_OPERATE,
)
async def restart(
    ctx: Context,
    id: dict[str, Any],
    force: bool = False,
    bypassBackupCheck: bool = False,
    bypassBlockedSuspend: bool | None = None,
    bypassCurrentVmCheck: bool | None = None,
    bypassVersionCheck: bool | None = None,
    suspendResidentVms: bool = False,
) -> None:
    """Reboot a host: its VMs moved to other hosts first (or, with suspendResidentVms, suspended and resumed).

    Without force, a VM that cannot move stops it and the host is enabled again; with force the host
    reboots anyway. ``bypassCurrentVmCheck`` is accepted: Podium does not know which VM it runs in.
    """
    if not (force if bypassVersionCheck is None else bypassVersionCheck):
        _check_versions(ctx, id)
    if suspendResidentVms:
        await _smart_reboot(ctx, id, force if bypassBlockedSuspend is None else bypassBlockedSuspend)
        return
    await clear_host(ctx, id, force)
    await xapi(ctx, id, "host.reboot")  # answered at once: the host reboots in the background


async def _smart_reboot(ctx: Context, host: dict[str, Any], bypass_blocked_suspend: bool) -> None:
    """Disable the host, suspend its VMs, reboot it, wait for it, resume the VMs (then enable it on failure)."""
    objects = ctx.services.objects
    await xapi(ctx, host, "host.disable")
    try:
        vms = [v for v in (objects.get(i) for i in host.get("residentVms", [])) if v and v["type"] == "VM"]
        blocked = [
            v
            for v in vms
            if v["power_state"] not in ("Halted", "Suspended")
            and "suspend" in (v.get("blockedOperations") or {})
        ]
        if blocked and not bypass_blocked_suspend:
            raise IncorrectState([v["id"] for v in blocked], [], "suspendBlocked")
        suspended: list[dict[str, Any]] = []
        async with _suspend_unblocked(ctx, blocked):
            try:
                await _suspend_all(ctx, vms, suspended)
                before = host.get("agentStartTime") or 0
                await xapi(ctx, host, "host.reboot")
                await _agent_back(ctx, host["id"], before)
            finally:
                for vm in suspended:  # after the reboot the host is enabled again, so they may resume there
                    with contextlib.suppress(XapiError):
                        await xapi_task(ctx, vm, "VM.resume", False, False)
    except Exception:
        with contextlib.suppress(XapiError):  # it may have rebooted, and be enabled already
            await xapi(ctx, host, "host.enable")
        raise


@contextlib.asynccontextmanager
async def _suspend_unblocked(ctx: Context, vms: list[dict[str, Any]]) -> AsyncIterator[None]:
    """Lift the VMs' block on suspend for a while, and put it back."""
    for vm in vms:
        await xapi(ctx, vm, "VM.remove_from_blocked_operations", "suspend")
    try:
        yield
    finally:
        for vm in vms:
            with contextlib.suppress(XapiError):
                await xapi(
                    ctx, vm, "VM.add_to_blocked_operations", "suspend", vm["blockedOperations"]["suspend"]
                )


async def _suspend_all(ctx: Context, vms: list[dict[str, Any]], suspended: list[dict[str, Any]]) -> None:
    """Suspend each VM (those already halted or suspended are skipped); every failure is waited for."""

    async def one(vm: dict[str, Any]) -> None:
        try:
            await xapi_task(ctx, vm, "VM.suspend")
            suspended.append(vm)
        except XapiFailure as e:
            state = e.params[2].lower() if len(e.params) > 2 else ""
            if e.xapi_code == "VM_BAD_POWER_STATE" and state in ("halted", "suspended"):
                return
            raise

    results = await asyncio.gather(*(one(vm) for vm in vms), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _agent_back(ctx: Context, host_id: str, before: float) -> None:
    """Wait until the host's agent has restarted (a later agent_start_time) and the host is enabled."""
    objects = ctx.services.objects

    def back() -> bool:
        obj = objects.get(host_id)
        return obj is not None and bool(obj.get("enabled")) and (obj.get("agentStartTime") or 0) > before

    try:
        await objects.wait_for(back, AGENT_RESTART_TIMEOUT)
    except TimeoutError:
        raise ApiError(f"the host {host_id} was not back within {AGENT_RESTART_TIMEOUT:.0f} s") from None


@api("host.restartAgent", params={**ID, "bypassBackupCheck": _OPTIONAL_FLAG}, resolve=_HOST)
async def restart_agent(ctx: Context, id: dict[str, Any], bypassBackupCheck: bool = False) -> None:
    """Restart the host's XAPI agent; returns once it is back (its VMs keep running)."""
    before = id.get("agentStartTime") or 0
    await xapi(ctx, id, "host.restart_agent")
    await _agent_back(ctx, id["id"], before)


@api("host.restart_agent", params={**ID, "bypassBackupCheck": _OPTIONAL_FLAG}, resolve=_HOST)
async def restart_agent_old_name(ctx: Context, id: dict[str, Any], bypassBackupCheck: bool = False) -> None:
    """Restart the host's XAPI agent (the old name of host.restartAgent)."""
    await restart_agent(ctx, id, bypassBackupCheck)


# --- power-off -------------------------------------------------------------------------------------
@api(
    "host.stop",
    params={**ID, "bypassBackupCheck": _OPTIONAL_FLAG, "bypassEvacuate": _OPTIONAL_FLAG},
    resolve=_OPERATE,
)
async def stop(
    ctx: Context, id: dict[str, Any], bypassBackupCheck: bool = False, bypassEvacuate: bool = False
) -> None:
    """Shut a host down, its VMs moved to other hosts first (with bypassEvacuate, only disabled first)."""
    if bypassEvacuate:
        await xapi(ctx, id, "host.disable")
    else:
        await clear_host(ctx, id)
    await xapi(ctx, id, "host.shutdown")


@api(
    "host.emergencyShutdownHost",
    params={"host": string()},
    resolve=(Resolve("host", ("host",), "administrate"),),
)
async def emergency_shutdown_host(ctx: Context, host: dict[str, Any]) -> None:
    """Suspend every VM of a host (as far as each can be) and shut the host down."""
    await xapi(ctx, host, "host.disable")
    vms = [
        v
        for v in (ctx.services.objects.get(i) for i in host.get("residentVms", []))
        if v and v["type"] == "VM"
    ]

    async def suspend(vm: dict[str, Any]) -> None:
        with contextlib.suppress(XapiError):
            await xapi_task(ctx, vm, "VM.suspend")

    await asyncio.gather(*(suspend(vm) for vm in vms))
    await xapi(ctx, host, "host.shutdown")
