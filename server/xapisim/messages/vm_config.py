"""VM configuration setters that xapi validates: VCPUs and the memory ranges.

Memory must keep ``static_min <= dynamic_min <= dynamic_max <= static_max`` (MEMORY_CONSTRAINT_VIOLATION
otherwise); static values and ``VCPUs_max`` change only while halted; ``VCPUs_at_startup`` stays within
1..VCPUs_max.
"""

from __future__ import annotations

from typing import Any

from ..call import Call
from ..dispatch import handler
from ..errors import Failure
from .vm import update_allowed_operations, vm_of


def _require_halted(ref: str, vm: dict[str, Any]) -> None:
    if vm["power_state"] != "Halted":
        raise Failure("VM_BAD_POWER_STATE", ref, "halted", str(vm["power_state"]).lower())


def _set_memory(ctx: Call, ref: str, **values: int) -> str:
    vm = vm_of(ctx, ref)
    if any(k.startswith("memory_static") for k in values):
        _require_halted(ref, vm)
    m = {
        k: int(vm[k])
        for k in ("memory_static_min", "memory_dynamic_min", "memory_dynamic_max", "memory_static_max")
    }
    m.update(values)
    if (
        not m["memory_static_min"]
        <= m["memory_dynamic_min"]
        <= m["memory_dynamic_max"]
        <= m["memory_static_max"]
    ):
        raise Failure(
            "MEMORY_CONSTRAINT_VIOLATION",
            "Memory limits must satisfy: static_min <= dynamic_min <= dynamic_max <= static_max",
        )
    ctx.db.update("VM", ref, **values)
    update_allowed_operations(ctx.db, ref)
    return ""


@handler("VM.set_memory_static_max")
async def set_memory_static_max(ctx: Call, ref: str, value: int) -> str:
    """Set the hard memory ceiling (halted only)."""
    return _set_memory(ctx, ref, memory_static_max=value)


@handler("VM.set_memory_static_min")
async def set_memory_static_min(ctx: Call, ref: str, value: int) -> str:
    """Set the memory floor (halted only)."""
    return _set_memory(ctx, ref, memory_static_min=value)


@handler("VM.set_memory_dynamic_max")
async def set_memory_dynamic_max(ctx: Call, ref: str, value: int) -> str:
    """Set the balloon ceiling."""
    return _set_memory(ctx, ref, memory_dynamic_max=value)


@handler("VM.set_memory_dynamic_min")
async def set_memory_dynamic_min(ctx: Call, ref: str, value: int) -> str:
    """Set the balloon floor."""
    return _set_memory(ctx, ref, memory_dynamic_min=value)


@handler("VM.set_memory_static_range")
async def set_memory_static_range(ctx: Call, ref: str, lo: int, hi: int) -> str:
    """Set both static limits (halted only)."""
    return _set_memory(ctx, ref, memory_static_min=lo, memory_static_max=hi)


@handler("VM.set_memory_dynamic_range")
async def set_memory_dynamic_range(ctx: Call, ref: str, lo: int, hi: int) -> str:
    """Set both balloon limits."""
    return _set_memory(ctx, ref, memory_dynamic_min=lo, memory_dynamic_max=hi)


@handler("VM.set_memory_limits")
async def set_memory_limits(ctx: Call, ref: str, smin: int, smax: int, dmin: int, dmax: int) -> str:
    """Set all four limits at once."""
    return _set_memory(
        ctx,
        ref,
        memory_static_min=smin,
        memory_static_max=smax,
        memory_dynamic_min=dmin,
        memory_dynamic_max=dmax,
    )


@handler("VM.set_memory")
async def set_memory(ctx: Call, ref: str, value: int) -> str:
    """Give a VM a fixed amount of memory (dynamic_min = dynamic_max = static_max)."""
    vm = vm_of(ctx, ref)
    if vm["power_state"] == "Halted":
        return _set_memory(
            ctx, ref, memory_static_max=value, memory_dynamic_max=value, memory_dynamic_min=value
        )
    return _set_memory(ctx, ref, memory_dynamic_max=value, memory_dynamic_min=value)


@handler("VM.set_VCPUs_max")
async def set_vcpus_max(ctx: Call, ref: str, value: int) -> str:
    """Set the most VCPUs the VM may have (halted only)."""
    vm = vm_of(ctx, ref)
    _require_halted(ref, vm)
    if value < 1 or value < int(vm["VCPUs_at_startup"]):
        raise Failure("VCPU_CONFIGURATION", "VCPUs_max must be at least 1 and at least VCPUs_at_startup")
    ctx.db.update("VM", ref, VCPUs_max=value)
    return ""


@handler("VM.set_VCPUs_at_startup")
async def set_vcpus_at_startup(ctx: Call, ref: str, value: int) -> str:
    """Set the VCPUs the VM boots with (1..VCPUs_max)."""
    vm = vm_of(ctx, ref)
    if not 1 <= value <= int(vm["VCPUs_max"]):
        raise Failure("VCPU_CONFIGURATION", "VCPUs_at_startup must be from 1 to VCPUs_max")
    ctx.db.update("VM", ref, VCPUs_at_startup=value)
    return ""


@handler("VM.set_VCPUs_number_live")
async def set_vcpus_number_live(ctx: Call, ref: str, value: int) -> str:
    """Hot-plug VCPUs into a running VM (up to VCPUs_max)."""
    vm = vm_of(ctx, ref)
    if vm["power_state"] != "Running":
        raise Failure("VM_BAD_POWER_STATE", ref, "running", str(vm["power_state"]).lower())
    if not 1 <= value <= int(vm["VCPUs_max"]):
        raise Failure("VCPU_CONFIGURATION", "the VCPU count must be from 1 to VCPUs_max")
    ctx.db.update("VM", ref, VCPUs_at_startup=value)
    if ctx.db.get("VM_metrics", vm["metrics"]) is not None:
        ctx.db.update("VM_metrics", vm["metrics"], VCPUs_number=value)
    return ""
