"""The audit trail: every call that needs a user (and every sign-in) is recorded, secrets redacted.

Calls never wait for the database: records go into a bounded queue that a background task writes in
batches. Should the queue overflow (a database far too slow), records are counted as lost and the log
says so; the calls themselves go on.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from typing import Any

from sqlalchemy import select

from ..db import AuditRecord, Database

log = logging.getLogger("podium.audit")

QUEUE = 10_000


class Audit:
    """Records calls; ``run`` is the writer task, started and stopped with the app."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        self.lost = 0

    def record(self, **fields: Any) -> None:
        """Queue one record (never blocks)."""
        log.info(
            "%s %s %s %s %.1fms",
            fields["user"] or "-",
            fields["method"],
            fields["params"],
            fields["outcome"],
            fields["duration_ms"],
        )
        try:
            self.queue.put_nowait({"time": datetime.datetime.now(datetime.UTC), **fields})
        except asyncio.QueueFull:
            self.lost += 1
            if self.lost % 1000 == 1:
                log.warning("audit records lost: %d (the database does not keep up)", self.lost)

    async def run(self) -> None:
        """Write queued records in batches until cancelled (then write what is left)."""
        try:
            while True:
                first = await self.queue.get()
                await self._write([first, *self._drain()])
        except asyncio.CancelledError:
            await self._write(self._drain())
            raise

    def _drain(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = []
        while not self.queue.empty() and len(batch) < 500:
            batch.append(self.queue.get_nowait())
        return batch

    async def _write(self, batch: list[dict[str, Any]]) -> None:
        if not batch:
            return
        try:
            async with self.db.session() as s, s.begin():
                s.add_all([AuditRecord(**r) for r in batch])
        except Exception:  # the trail must not stop the API; the log line of each call remains
            log.exception("cannot write %d audit records", len(batch))

    async def records(self, limit: int = 100, before: int | None = None) -> list[dict[str, Any]]:
        """The newest records (older than the record id ``before``, to page back)."""
        async with self.db.session() as s:
            query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(limit)
            if before is not None:
                query = query.where(AuditRecord.id < before)
            rows = (await s.scalars(query)).all()
        return [
            {
                "id": r.id,
                "time": r.time.isoformat(),
                "user": r.user,
                "remote": r.remote,
                "method": r.method,
                "params": r.params,
                "outcome": r.outcome,
                "durationMs": round(r.duration_ms, 2),
            }
            for r in rows
        ]
