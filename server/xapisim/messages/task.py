"""task.cancel: ask a running operation to stop; it ends as ``cancelled`` with TASK_CANCELLED."""

from __future__ import annotations

from ..dispatch import Call, handler
from ..generic import record_of


@handler("task.cancel")
async def cancel(ctx: Call, task: str) -> str:
    """Mark a pending task as cancelling; the operation notices at its next step and stops."""
    record = record_of(ctx, "task", task)
    if record["status"] == "pending":
        ctx.db.update("task", task, status="cancelling", current_operations={ctx.op_key: "cancel"})
    return ""
