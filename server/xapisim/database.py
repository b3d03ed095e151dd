"""One pool's database: records by class and reference, relations kept true, and a bounded change log.

Every change goes through :class:`Database` so that three things stay true at once, as in xapi:
one-to-many sets (``VM.VBDs``…) follow the single references, each change takes the next generation
number and lands in the change log that ``event.from`` and ``event.next`` read, and waiting event
callers are woken. Records are copy-on-write: a list or dict value is replaced, never mutated, so a
shallow copy of a record is a consistent snapshot.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from .datamodel import Class, DataModel
from .relations import Relation, relations_by_one_side
from .values import NULL_REF, XDateTime, new_ref, new_uuid, now

log = logging.getLogger(__name__)

# Classes whose rows change without events, as in xapi (sessions are not watched).
_SILENT_CLASSES = frozenset({"session"})


@dataclass(slots=True)
class Change:
    """One entry of the change log."""

    generation: int
    cls: str
    ref: str
    op: str  # add, mod, del
    uuid: str
    timestamp: XDateTime
    snapshot: dict[str, Any] | None  # kept only while legacy event.register subscribers exist


class ChangeLog:
    """The last ``capacity`` changes, addressable by generation number."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: list[Change] = []
        self.oldest = 1  # the generation of the oldest change that is still kept (or the next one)

    def append(self, change: Change) -> None:
        """Keep a change, dropping the oldest ones past the capacity."""
        if not self._items:
            self.oldest = change.generation
        self._items.append(change)
        if len(self._items) > 2 * self.capacity:
            drop = len(self._items) - self.capacity
            self.oldest = self._items[drop].generation
            del self._items[:drop]

    def since(self, generation: int) -> Iterator[Change]:
        """Changes with a generation above ``generation``, oldest first."""
        items = self._items
        lo, hi = 0, len(items)
        while lo < hi:  # generations are increasing: bisect
            mid = (lo + hi) // 2
            if items[mid].generation <= generation:
                lo = mid + 1
            else:
                hi = mid
        return iter(items[lo:])

    def lost(self, generation: int) -> bool:
        """Whether changes after ``generation`` have already been dropped."""
        return generation + 1 < self.oldest

    def forget(self, upto: int) -> None:
        """Drop every change up to ``upto`` (used to overflow the history on purpose)."""
        self._items = [c for c in self._items if c.generation > upto]
        self.oldest = upto + 1


class Database:
    """The records of one pool."""

    def __init__(self, dm: DataModel, history: int = 100_000) -> None:
        self.dm = dm
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in dm.classes}
        self.uuids: dict[str, dict[str, str]] = {name: {} for name in dm.classes}
        self.class_of: dict[str, str] = {}
        self.ctime: dict[str, int] = {}  # generation at which each live row was created
        self.mtime: dict[str, int] = {}  # generation of each live row's last change
        self.generation = 0
        self.changes = ChangeLog(history)
        self.keep_snapshots = 0  # number of legacy event.register subscribers
        # Encoded forms of records (per wire format), dropped when the record changes.
        self.encoded: dict[str, dict[str, Any]] = {}
        self.warmed = False  # every record encoded once since start (see records.warm)
        self._waiters: list[asyncio.Future[None]] = []
        self._relations = relations_by_one_side(dm)
        self.on_change: list[Callable[[Change], None]] = []

    # -- reading -------------------------------------------------------------------------------
    def cls(self, name: str) -> Class:
        """The data-model class of this name."""
        return self.dm.classes[name]

    def get(self, cls: str, ref: str) -> dict[str, Any] | None:
        """The record of ``ref`` in ``cls``, or None."""
        return self.tables[cls].get(ref)

    def by_uuid(self, cls: str, uuid: str) -> str | None:
        """The reference of the object of this uuid."""
        return self.uuids[cls].get(uuid)

    def records(self, cls: str) -> dict[str, dict[str, Any]]:
        """All records of a class (live: do not mutate)."""
        return self.tables[cls]

    # -- writing -------------------------------------------------------------------------------
    def create(self, cls: str, fields: dict[str, Any], ref: str | None = None) -> str:
        """Add a record with defaults for the fields not given; returns its reference."""
        ref = ref or new_ref()
        record = self.dm.new_record(self.cls(cls))
        record.update(fields)
        if not record.get("uuid") and "uuid" in record:
            record["uuid"] = new_uuid()
        self._insert(cls, ref, record)
        self._emit(cls, ref, "add", record)
        self._link(cls, ref, record, None)
        return ref

    def load(self, cls: str, ref: str, record: dict[str, Any], ctime: int = 0, mtime: int = 0) -> None:
        """Insert a record as read from a dump: no event, relations recomputed later."""
        self._insert(cls, ref, record)
        self.ctime[ref] = ctime
        self.mtime[ref] = max(mtime, ctime)

    def loaded(self, generation: int) -> None:
        """Mark the end of loading: generation numbers continue from the dump's own."""
        self.generation = max(generation, max(self.mtime.values(), default=0), 1)
        for ref in self.class_of:
            self.ctime[ref] = self.ctime.get(ref) or self.generation
            self.mtime[ref] = self.mtime.get(ref) or self.generation
        self.changes.oldest = self.generation + 1

    def _insert(self, cls: str, ref: str, record: dict[str, Any]) -> None:
        self.tables[cls][ref] = record
        self.class_of[ref] = cls
        uuid = record.get("uuid")
        if uuid:
            self.uuids[cls][uuid] = ref

    def update(self, cls: str, ref: str, **fields: Any) -> None:
        """Change fields of a record; one ``mod`` event, relations kept true."""
        record = self.tables[cls][ref]
        old = {k: record.get(k) for k in fields}
        changed = {k: v for k, v in fields.items() if old[k] != v or type(old[k]) is not type(v)}
        if not changed:
            return
        record.update(changed)
        if "uuid" in changed:
            self.uuids[cls].pop(str(old["uuid"]), None)
            self.uuids[cls][changed["uuid"]] = ref
        self._emit(cls, ref, "mod", record)
        self._link(cls, ref, record, old)

    def touch(self, cls: str, ref: str) -> None:
        """Emit a ``mod`` event without changing anything (event.inject)."""
        self._emit(cls, ref, "mod", self.tables[cls][ref])

    def destroy(self, cls: str, ref: str) -> None:
        """Remove a record; one ``del`` event, the sets that held it updated."""
        record = self.tables[cls].pop(ref)
        self.class_of.pop(ref, None)
        self.mtime.pop(ref, None)
        self.ctime.pop(ref, None)
        uuid = record.get("uuid")
        if uuid:
            self.uuids[cls].pop(uuid, None)
        self._emit(cls, ref, "del", None, uuid=uuid or "")
        self._unlink(cls, ref, record)

    # -- relations -----------------------------------------------------------------------------
    def _link(self, cls: str, ref: str, record: dict[str, Any], old: dict[str, Any] | None) -> None:
        for rel in self._relations.get(cls, ()):
            if old is not None and rel.one_field not in old:
                continue
            before = old[rel.one_field] if old is not None else NULL_REF
            after = record.get(rel.one_field, NULL_REF)
            if before == after:
                continue
            self._set_member(rel, before, ref, present=False)
            self._set_member(rel, after, ref, present=True)

    def _unlink(self, cls: str, ref: str, record: dict[str, Any]) -> None:
        for rel in self._relations.get(cls, ()):
            self._set_member(rel, record.get(rel.one_field, NULL_REF), ref, present=False)

    def _set_member(self, rel: Relation, owner: str, member: str, present: bool) -> None:
        if not owner or owner == NULL_REF:
            return
        target = self.tables[rel.many_cls].get(owner)
        if target is None:
            return
        current = target.get(rel.many_field, [])
        if present and member not in current:
            self.update(rel.many_cls, owner, **{rel.many_field: [*current, member]})
        elif not present and member in current:
            self.update(rel.many_cls, owner, **{rel.many_field: [m for m in current if m != member]})

    def recompute_relations(self) -> None:
        """Rebuild every one-to-many set from the single references (after loading a dump)."""
        for rels in self._relations.values():
            for rel in rels:
                sets: dict[str, list[str]] = {ref: [] for ref in self.tables[rel.many_cls]}
                for ref, record in self.tables[rel.one_cls].items():
                    owner = record.get(rel.one_field, NULL_REF)
                    if owner in sets:
                        sets[owner].append(ref)
                for owner, members in sets.items():
                    self.tables[rel.many_cls][owner][rel.many_field] = members

    # -- events --------------------------------------------------------------------------------
    def _emit(self, cls: str, ref: str, op: str, record: dict[str, Any] | None, uuid: str = "") -> None:
        self.encoded.pop(ref, None)
        if cls in _SILENT_CLASSES:
            return
        self.generation += 1
        if op != "del":
            self.mtime[ref] = self.generation
            if op == "add":
                self.ctime[ref] = self.generation
        snapshot = dict(record) if (record is not None and self.keep_snapshots) else None
        change = Change(
            self.generation,
            cls,
            ref,
            op,
            uuid or (record.get("uuid", "") if record else ""),
            now(),
            snapshot,
        )
        self.changes.append(change)
        for callback in self.on_change:
            callback(change)
        self.wake()

    def wake(self) -> None:
        """Wake every caller waiting for a change."""
        waiters, self._waiters = self._waiters, []
        for fut in waiters:
            if not fut.done():
                fut.set_result(None)

    async def wait_change(self, after: int, timeout: float) -> bool:
        """Wait until the generation passes ``after`` or the timeout elapses; True if it did."""
        if self.generation > after:
            return True
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            return self.generation > after
        return True

    def overflow_history(self) -> None:
        """Forget the whole change log, so every outstanding token meets EVENTS_LOST."""
        self.generation += 1
        self.changes.forget(self.generation)
        self.wake()
