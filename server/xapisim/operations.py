"""An operation held in an object's ``current_operations`` while it runs, as xapi's ``with_*_operation`` do.

The object's check decides first (its failure is raised as is); the operation is then listed under the
call's key (its task, for an Async call) and ``allowed_operations`` recomputed, and both again when it
ends, whatever the outcome. VMs (:func:`xapisim.messages.vm.operation`) and hosts
(:func:`xapisim.messages.host.host_operation`) share it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from .call import Call
from .database import Database
from .errors import Failure
from .generic import record_of

Check = Callable[[Database, str, dict[str, Any], str], Failure | None]
Recompute = Callable[[Database, str], None]


@asynccontextmanager
async def holding(
    ctx: Call, cls: str, ref: str, op: str, check: Check, recompute: Recompute
) -> AsyncIterator[dict[str, Any]]:
    """Check ``op`` on the object, hold it in current_operations while it runs, recompute what is allowed."""
    record = record_of(ctx, cls, ref)
    failure = check(ctx.db, ref, record, op)
    if failure is not None:
        raise failure
    key = ctx.op_key
    ctx.db.update(cls, ref, current_operations={**record["current_operations"], key: op})
    recompute(ctx.db, ref)
    try:
        yield record
    finally:
        current = ctx.db.get(cls, ref)
        if current is not None:
            ops = {k: v for k, v in current["current_operations"].items() if k != key}
            ctx.db.update(cls, ref, current_operations=ops)
            recompute(ctx.db, ref)
