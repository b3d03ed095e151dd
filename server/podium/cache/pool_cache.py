"""One pool's part of the cache: its raw XAPI records, and the objects shaped from them.

It is the :class:`~podium.xapi.Sink` of the pool's event loop. Each object is shaped by the function
its class has in :mod:`.xo`; while shaping, every record the function reads is noted, so that a change
of a VM's metrics or guest metrics re-shapes the VM. A full read (at connection, or after EVENTS_LOST)
is compared record by record with what the cache holds, and an object goes out only when it changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ..errors import PodiumError
from ..xapi import Status, Unreachable, XapiFailure
from .objects import Obj, ObjectCache
from .xo import SHAPERS, Reader, Shaper

log = logging.getLogger(__name__)

Record = dict[str, Any]


class DuplicatePool(PodiumError):
    """The pool is already connected through another server entry."""

    code = 11
    status = 409


class PoolCache:
    """Raw records of one pool and the objects made from them, kept in the shared object cache."""

    def __init__(
        self,
        objects: ObjectCache,
        classes: list[str],
        on_status: Callable[[Status], None] | None = None,
        claim: Callable[[str], None] | None = None,
    ) -> None:
        self.objects = objects
        self._claim = claim  # raises DuplicatePool when another connection holds the pool
        self.classes = classes
        self._canonical = {c.lower(): c for c in classes}
        self.records: dict[str, Record] = {}
        self.cls_of: dict[str, str] = {}
        self.object_id: dict[str, str] = {}  # ref -> id of its object in the cache
        self.readers_of: dict[str, set[str]] = {}  # ref -> refs whose objects read its record
        self.linkers_of: dict[str, set[str]] = {}  # ref -> refs whose objects link to it
        self.reads: dict[str, tuple[list[str], list[str]]] = {}  # ref -> (records read, refs linked)
        self.pool_id = ""
        self.pool_ref = ""
        self._on_status = on_status
        self.disconnected = False  # the pool's connection is lost (waiters for its tasks fail)

    # -- Sink ----------------------------------------------------------------------------------
    def status(self, status: Status) -> None:
        """The event loop's connection status."""
        if self._on_status is not None:
            self._on_status(status)
        self.disconnected = status.state == "disconnected"
        if self.disconnected:
            self.objects.wake()

    # -- TaskWatch -----------------------------------------------------------------------------
    async def task_ended(self, ref: str, timeout: float) -> Record:
        """The record of one of the pool's tasks once it is no longer pending, as its events bring it.

        The pool's connection lost, before or while waiting, raises :class:`~podium.xapi.Unreachable` (the
        task's outcome may never be known: a transfer must not wait an hour for it); a task destroyed before
        it ended raises HANDLE_INVALID, as asking the pool for it would.
        """
        seen = False

        def ended() -> Record | None:
            nonlocal seen
            if self.disconnected:
                raise Unreachable(f"the connection to pool {self.pool_id or '?'} is lost: task {ref} unknown")
            rec = self.records.get(ref)
            if rec is None:
                if seen:
                    raise XapiFailure("HANDLE_INVALID", ["task", ref])
                return None
            seen = True
            return rec if rec.get("status") not in ("pending", "cancelling") else None

        return await self.objects.wait_for(ended, timeout)

    def full(self, records: dict[str, dict[str, Record]]) -> None:
        """A complete read: apply only the differences to the cache."""
        pools = records.get("pool", {})
        for rec in pools.values():
            if self._claim is not None:
                self._claim(str(rec.get("uuid", "")))
        fresh: dict[str, Record] = {}
        fresh_cls: dict[str, str] = {}
        for cls, by_ref in records.items():
            for ref, rec in by_ref.items():
                fresh[ref] = rec
                fresh_cls[ref] = cls
        self._set_pool(pools)
        changed = {ref for ref, rec in fresh.items() if self.records.get(ref) != rec}
        appeared = {ref for ref in changed if ref not in self.records}
        gone = set(self.records) - set(fresh)
        for ref in gone:
            self._forget(ref)
        for ref in changed:
            self.records[ref] = fresh[ref]
            self.cls_of[ref] = fresh_cls[ref]
        self._reshape(changed | gone, appeared | gone)

    def events(self, events: list[dict[str, Any]]) -> None:
        """One ``event.from`` batch."""
        touched: set[str] = set()
        born_or_gone: set[str] = set()
        for ev in events:
            cls = self._canonical.get(str(ev.get("class", "")).lower())
            ref = ev.get("ref", "")
            if cls is None or not ref:
                continue
            touched.add(ref)
            if ev.get("operation") == "del":
                if ref in self.records:
                    born_or_gone.add(ref)
                self._forget(ref)
            elif "snapshot" in ev:
                if ref not in self.records:
                    born_or_gone.add(ref)
                self.records[ref] = ev["snapshot"]
                self.cls_of[ref] = cls
                if cls == "pool":
                    self._set_pool({ref: ev["snapshot"]})
        self._reshape(touched, born_or_gone)

    def clear(self) -> None:
        """The pool is gone for good: every one of its objects leaves."""
        ids = set(self.object_id.values())
        self.records.clear()
        self.cls_of.clear()
        self.object_id.clear()
        self.readers_of.clear()
        self.linkers_of.clear()
        self.reads.clear()
        self.objects.apply({}, ids, self.pool_id or None)

    # -- shaping -------------------------------------------------------------------------------
    def _set_pool(self, pools: dict[str, Record]) -> None:
        for ref, rec in pools.items():
            self.pool_ref, self.pool_id = ref, str(rec.get("uuid", ref))

    def _forget(self, ref: str) -> None:
        self.records.pop(ref, None)
        self.cls_of.pop(ref, None)

    def _reshape(self, refs: set[str], born_or_gone: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        affected = set(refs)
        for ref in refs:
            affected |= self.readers_of.get(ref, set())
        for ref in born_or_gone:
            affected |= self.linkers_of.get(ref, set())
        enter: dict[str, Obj] = {}
        exit_ids: set[str] = set()
        for ref in affected:
            old_id = self.object_id.get(ref)
            obj = self._shape(ref)
            if obj is None:
                if old_id is not None:
                    exit_ids.add(old_id)
                    del self.object_id[ref]
                continue
            new_id = obj["id"]
            if old_id is not None and old_id != new_id:
                exit_ids.add(old_id)
            self.object_id[ref] = new_id
            if self.objects.get(new_id) != obj:
                enter[new_id] = obj
        exit_ids -= set(enter)
        self.objects.apply(enter, exit_ids, self.pool_id or None)

    def _shape(self, ref: str) -> Obj | None:
        old_reads, old_links = self.reads.pop(ref, ((), ()))
        for deps, index in ((old_reads, self.readers_of), (old_links, self.linkers_of)):
            for dep in deps:
                users = index.get(dep)
                if users is not None:
                    users.discard(ref)
                    if not users:
                        del index[dep]
        rec = self.records.get(ref)
        cls = self.cls_of.get(ref)
        shaper: Shaper | None = SHAPERS.get(cls or "")
        if rec is None or shaper is None:
            return None
        reader = Reader(self)
        try:
            obj = shaper(ref, rec, reader)
        except Exception:  # one odd record must not stop the pool's cache; it is shaped again when it changes
            log.exception("cannot shape %s %s", cls, ref)
            obj = None
        if reader._reads or reader._links:
            self.reads[ref] = (reader._reads, reader._links)
            for dep in reader._reads:
                self.readers_of.setdefault(dep, set()).add(ref)
            for dep in reader._links:
                self.linkers_of.setdefault(dep, set()).add(ref)
        return obj
