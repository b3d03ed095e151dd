"""message.*: the pool's alerts. xapi keeps them outside the database, so their accessors are explicit."""

from __future__ import annotations

from typing import Any

from ..call import Call
from ..dispatch import handler
from ..errors import Failure
from ..generic import record_of
from ..records import LazyRecord, LazyRecords
from ..values import now


def _matching(ctx: Call, keep: Any) -> dict[str, LazyRecord]:
    return {
        ref: LazyRecord(ctx.db, "message", ref) for ref, rec in ctx.db.records("message").items() if keep(rec)
    }


@handler("message.get_all_records")
async def get_all_records(ctx: Call) -> LazyRecords:
    """Every message."""
    return LazyRecords(ctx.db, "message")


@handler("message.get_all")
async def get_all(ctx: Call) -> list[str]:
    """Every message reference."""
    return list(ctx.db.records("message"))


@handler("message.get_record")
async def get_record(ctx: Call, ref: str) -> LazyRecord:
    """One message."""
    record_of(ctx, "message", ref)
    return LazyRecord(ctx.db, "message", ref)


@handler("message.get_by_uuid")
async def get_by_uuid(ctx: Call, uuid: str) -> str:
    """A message by uuid."""
    ref = ctx.db.by_uuid("message", uuid)
    if ref is None:
        raise Failure("UUID_INVALID", "message", uuid)
    return ref


@handler("message.get_since")
async def get_since(ctx: Call, since: str) -> dict[str, LazyRecord]:
    """Messages newer than a time."""
    return _matching(ctx, lambda r: r["timestamp"] > since)


@handler("message.get")
async def get(ctx: Call, cls: str, obj_uuid: str, since: str) -> dict[str, LazyRecord]:
    """Messages about one object, newer than a time."""
    return _matching(ctx, lambda r: r["cls"] == cls and r["obj_uuid"] == obj_uuid and r["timestamp"] > since)


@handler("message.create")
async def create(ctx: Call, name: str, priority: int, cls: str, obj_uuid: str, body: str) -> str:
    """Raise a message about an object (which must exist)."""
    model = ctx.sim.dm.find(cls)
    if model is None or ctx.db.by_uuid(model.name, obj_uuid) is None:
        raise Failure("UUID_INVALID", cls, obj_uuid)
    fields = {
        "name": name,
        "priority": priority,
        "cls": cls,
        "obj_uuid": obj_uuid,
        "timestamp": now(),
        "body": body,
    }
    return ctx.db.create("message", fields)


@handler("message.destroy")
async def destroy(ctx: Call, ref: str) -> str:
    """Dismiss a message."""
    record_of(ctx, "message", ref)
    ctx.db.destroy("message", ref)
    return ""


@handler("message.destroy_many")
async def destroy_many(ctx: Call, refs: list[str]) -> str:
    """Dismiss several messages (unknown ones are skipped, as xapi does)."""
    for ref in refs:
        if ctx.db.get("message", ref) is not None:
            ctx.db.destroy("message", ref)
    return ""
