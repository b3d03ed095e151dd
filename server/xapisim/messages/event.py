"""event.*: ``event.from`` with xapi's tokens and coalescing, ``event.inject``, and the legacy
``event.register`` / ``event.next`` / ``event.unregister`` queue.

``event.from`` answers one event per changed object with its current record, as xapi does: ``add``
(and ``mod``) for an object created after the token, ``mod`` for one changed, ``del`` for one deleted
that existed at the token; nothing for an object created and deleted in between. Tokens are xapi's:
two zero-padded 20-digit counters. Unlike xapi, whose history is the whole database, the simulator
keeps a bounded change log, and a token older than it meets EVENTS_LOST: clients must resync.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from ..call import Call
from ..database import Database
from ..dispatch import handler
from ..errors import Failure
from ..records import LazyRecord
from ..values import I32


def make_token(generation: int, messages: int = 0) -> str:
    """A token in xapi's format."""
    return f"{generation:020d},{messages:020d}"


def parse_token(token: str) -> int:
    """The database generation of a token; ``""`` is the beginning of time."""
    if token == "":
        return 0
    parts = token.split(",")
    if len(parts) != 2:
        raise Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
    try:
        generation, _messages = int(parts[0]), int(parts[1])
    except ValueError:
        raise Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", token) from None
    if generation < 0:
        raise Failure("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
    return generation


@dataclass(frozen=True)
class Subscription:
    """Which classes (lowercase) and objects a caller watches."""

    everything: bool
    classes: frozenset[str]
    objects: frozenset[tuple[str, str]]

    def matches(self, lcls: str, ref: str) -> bool:
        """Whether a change of ``ref`` in class ``lcls`` is of interest."""
        return self.everything or lcls in self.classes or (lcls, ref) in self.objects


def parse_subscriptions(classes: list[str]) -> Subscription:
    """``*``, ``vm`` or ``vm/OpaqueRef:…``, compared without case."""
    everything = False
    cls_set, objects = set(), set()
    for sub in classes:
        if sub == "*":
            everything = True
            continue
        name, sep, ref = sub.partition("/")
        if not name or (sep and not ref) or "/" in ref:
            raise Failure("EVENT_SUBSCRIPTION_PARSE_FAILURE", sub)
        if sep:
            objects.add((name.lower(), ref))
        else:
            cls_set.add(name.lower())
    return Subscription(everything, frozenset(cls_set), frozenset(objects))


def _event(db: Database, cls: str, ref: str, op: str, generation: int) -> dict[str, Any]:
    ev: dict[str, Any] = {
        "id": str(generation),
        "timestamp": "0.0",
        "class": cls.lower(),
        "operation": op,
        "ref": ref,
    }
    if op != "del":
        ev["snapshot"] = LazyRecord(db, cls, ref)
    return ev


def collect(db: Database, sub: Subscription, since: int) -> list[dict[str, Any]]:
    """The coalesced events of every watched object changed after generation ``since``."""
    adds, mods, dels = [], [], []
    if since == 0:
        for cls, table in db.tables.items():
            lcls = cls.lower()
            if cls == "session":
                continue
            for ref in table:
                if sub.matches(lcls, ref):
                    adds.append(_event(db, cls, ref, "add", db.ctime.get(ref, 1)))
                    mods.append(_event(db, cls, ref, "mod", db.mtime.get(ref, 1)))
        return adds + mods
    seen: dict[str, tuple[str, bool, int]] = {}  # ref -> (class, created in window, last generation)
    for change in db.changes.since(since):
        if not sub.matches(change.cls.lower(), change.ref):
            continue
        prev = seen.get(change.ref)
        created = (prev[1] if prev else False) or change.op == "add"
        seen[change.ref] = (change.cls, created, change.generation)
    for ref, (cls, created, generation) in seen.items():
        if ref in db.tables[cls]:
            if created:
                adds.append(_event(db, cls, ref, "add", db.ctime.get(ref, generation)))
            mods.append(_event(db, cls, ref, "mod", db.mtime.get(ref, generation)))
        elif not created:
            dels.append(_event(db, cls, ref, "del", generation))
    return adds + mods + dels


def _batch(db: Database, events: list[dict[str, Any]], generation: int) -> dict[str, Any]:
    counts = {cls.lower(): I32(len(t)) for cls, t in db.tables.items()}
    return {"events": events, "valid_ref_counts": counts, "token": make_token(generation)}


@handler("event.from")
async def event_from(ctx: Call, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
    """Wait up to ``timeout`` seconds for changes after ``token`` to the subscribed classes."""
    since = parse_token(token)
    sub = parse_subscriptions(classes)
    db = ctx.db
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0.0, timeout)
    while True:
        ctx.sim.check_session(ctx.pool, ctx.session)
        if since and db.changes.lost(since):
            raise Failure("EVENTS_LOST")
        generation = db.generation
        events = collect(db, sub, since)
        remaining = deadline - loop.time()
        if events or remaining <= 0:
            return _batch(db, events, generation)
        since = generation
        await db.wait_change(generation, remaining)


@handler("event.inject")
async def inject(ctx: Call, cls: str, ref: str) -> str:
    """Make a ``mod`` event for an object and return a token from just before it."""
    model = ctx.sim.dm.find(cls)
    if model is None or ctx.db.get(model.name, ref) is None:
        raise Failure("HANDLE_INVALID", cls, ref)
    ctx.db.touch(model.name, ref)
    return make_token(ctx.db.generation - 1)


@handler("event.get_current_id")
async def get_current_id(ctx: Call) -> int:
    """The current event counter."""
    return ctx.db.generation


# --- legacy API ----------------------------------------------------------------------------------
@dataclass
class Registration:
    """A session's legacy subscription: its classes and how far its queue has been read."""

    classes: set[str] = field(default_factory=set)
    position: int = 0


def _registrations(ctx: Call) -> dict[str, Registration]:
    return ctx.pool.registrations


@handler("event.register")
async def register(ctx: Call, classes: list[str]) -> str:
    """Add classes to the session's subscription, starting from now."""
    parse_subscriptions(classes)
    assert ctx.session is not None
    regs = _registrations(ctx)
    if ctx.session not in regs:
        regs[ctx.session] = Registration(position=ctx.db.generation)
        ctx.db.keep_snapshots += 1
    regs[ctx.session].classes.update(classes)
    return ""


@handler("event.unregister")
async def unregister(ctx: Call, classes: list[str]) -> str:
    """Remove classes from the session's subscription."""
    assert ctx.session is not None
    reg = _registrations(ctx).get(ctx.session)
    if reg is not None:
        reg.classes.difference_update(classes)
    return ""


@handler("event.next")
async def next_events(ctx: Call) -> list[dict[str, Any]]:
    """Block until events of the subscribed classes exist, and return each one (not coalesced)."""
    assert ctx.session is not None
    regs = _registrations(ctx)
    reg = regs.get(ctx.session)
    if reg is None:
        raise Failure("SESSION_NOT_REGISTERED", ctx.session)
    db = ctx.db
    while True:
        try:
            ctx.sim.check_session(ctx.pool, ctx.session)
        except Failure:
            regs.pop(ctx.session, None)
            db.keep_snapshots -= 1
            raise
        if db.changes.lost(reg.position):
            reg.position = db.generation
            raise Failure("EVENTS_LOST")
        sub = parse_subscriptions(sorted(reg.classes))
        out = []
        for change in db.changes.since(reg.position):
            if sub.matches(change.cls.lower(), change.ref):
                ev: dict[str, Any] = {
                    "id": str(change.generation),
                    "timestamp": f"{time.time():.0f}.",
                    "class": change.cls.lower(),
                    "operation": change.op,
                    "ref": change.ref,
                    "obj_uuid": change.uuid,
                }
                if change.snapshot is not None:
                    ev["snapshot"] = change.snapshot
                out.append(ev)
        reg.position = db.generation
        if out:
            return out
        await db.wait_change(reg.position, 3600.0)
