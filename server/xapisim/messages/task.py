"""Tasks: cancel (the operation stops and ends as ``cancelled`` with TASK_CANCELLED), create and destroy."""

from __future__ import annotations

from ..call import Call
from ..dispatch import create_task, handler
from ..generic import record_of


@handler("task.cancel")
async def cancel(ctx: Call, task: str) -> str:
    """Mark a pending task as cancelling; the operation notices at its next step and stops."""
    record = record_of(ctx, "task", task)
    if record["status"] == "pending":
        ctx.db.update("task", task, status="cancelling", current_operations={ctx.op_key: "cancel"})
    return ""


@handler("task.create")
async def create(ctx: Call, label: str, description: str) -> str:
    """A pending task of the caller's own, to follow an HTTP transfer (``task_id``) as clients do."""
    return create_task(ctx, label, description)


@handler("task.destroy")
async def destroy(ctx: Call, task: str) -> str:
    """Forget a task."""
    record_of(ctx, "task", task)
    ctx.db.destroy("task", task)
    return ""
