"""The event loop of one pool: a full read, then ``event.from`` for ever, through every fault.

1. Log in on the master; ``event.inject`` on the pool object gives a token from before the read.
2. ``get_all_records`` of every class the sink keeps: handed over as a full snapshot, which the sink
   compares with what it has, so a resync shows clients only what really changed.
3. ``event.from(classes, token, 60)`` in a loop; each batch goes to the sink.

EVENTS_LOST or SESSION_INVALID start again at 2 (after logging in again). A network error, a timeout or
a master that vanished: reconnect with exponential backoff and jitter; while the master does not
answer, the pool's other hosts (their addresses are remembered) are asked in parallel who the master
is now. A pool that keeps failing shows as disconnected with its last error and keeps trying.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import PodiumError
from ..gcpause import bulk
from ..net import Endpoint
from .client import XapiClient
from .errors import AuthenticationFailed, CallTimeout, TlsError, Unreachable, XapiFailure

log = logging.getLogger(__name__)

EVENT_TIMEOUT = 60.0


class Sink(Protocol):
    """Where a watcher delivers what it reads (the cache implements it)."""

    def full(self, records: dict[str, dict[str, dict[str, Any]]]) -> None:
        """Every record of every watched class: ``{class: {ref: record}}``."""

    def events(self, events: list[dict[str, Any]]) -> None:
        """One batch of ``event.from`` events."""

    def status(self, status: Status) -> None:
        """The connection status changed."""


@dataclass
class Status:
    """A pool connection's state as users see it."""

    state: str = "connecting"  # connecting, connected, disconnected
    last_error: str = ""
    since: float = field(default_factory=time.time)
    master: str = ""
    pool_uuid: str = ""


class Backoff:
    """Exponential backoff with full jitter: 0.5 s doubling up to 30 s."""

    def __init__(self, first: float = 0.5, cap: float = 30.0) -> None:
        self.first, self.cap, self.attempt = first, cap, 0

    def next(self) -> float:
        """The next delay."""
        delay = min(self.cap, self.first * (2**self.attempt))
        self.attempt += 1
        return random.uniform(delay / 2, delay)

    def reset(self) -> None:
        """After a success."""
        self.attempt = 0


class PoolWatcher:
    """Keeps a sink in step with one pool."""

    def __init__(
        self, client: XapiClient, sink: Sink, classes: Iterable[str], known: Iterable[str] = ()
    ) -> None:
        self.client = client
        self.sink = sink
        self.classes = list(classes)
        self.known_hosts: list[str] = list(known)  # addresses of the pool's hosts, to find a new master
        self.status = Status()
        self.token = ""
        self.pool_ref = ""
        self._backoff = Backoff()

    def _set(self, state: str, error: str = "") -> None:
        if state != self.status.state or error != self.status.last_error:
            self.status = Status(state, error, time.time(), str(self.client.master), self.status.pool_uuid)
            self.sink.status(self.status)

    async def run(self) -> None:
        """Connect, read, follow events; on any fault reconnect. Runs until cancelled."""
        while True:
            try:
                await self._connect()
                await self._resync()
                self._set("connected")
                await self._follow()
            except asyncio.CancelledError:
                raise
            except XapiFailure as e:
                if e.xapi_code in ("EVENTS_LOST", "SESSION_INVALID"):
                    log.info("pool %s: %s, reading everything again", self.status.pool_uuid, e.xapi_code)
                    if e.xapi_code == "SESSION_INVALID":
                        self.client.session = None
                else:
                    await self._fail(e)
            except PodiumError as e:  # XAPI's errors, and the sink's refusal of a duplicate pool
                await self._fail(e)
            except Exception as e:  # a bug must not stop the pool's event loop for good
                log.exception("pool %s: unexpected error in the event loop", self.status.pool_uuid or "?")
                await self._fail(PodiumError(f"internal error: {type(e).__name__}: {e}"))
            # Back-to-back resyncs (EVENTS_LOST again and again) are spaced out too.
            await asyncio.sleep(self._backoff.next())

    async def _fail(self, e: PodiumError) -> None:
        log.warning("pool %s (%s): %s", self.status.pool_uuid or "?", self.client.master, e.message)
        self._set("disconnected", e.message)
        if not isinstance(e, AuthenticationFailed | TlsError | Unreachable):
            await self.client.logout()  # best effort: a live session must not leak on every retry
        self.client.session = None

    async def _connect(self) -> None:
        if self.client.session is not None:
            return
        try:
            await self.client.connect()
        except (Unreachable, CallTimeout):
            master = await self._find_master()
            if master is None:
                raise
            await self.client.connect(master)
        self.status.master = str(self.client.master)

    async def _find_master(self) -> Endpoint | None:
        """Ask every known host of the pool, in parallel, who the master is now."""
        current = self.client.master
        candidates = [current.with_host(h) for h in self.known_hosts if h != current.host]
        if not candidates:
            return None
        answers = await asyncio.gather(
            *(self.client.locate_master(c) for c in candidates), return_exceptions=True
        )
        for answer in answers:
            # A host ejected from the pool answers as the master of another pool: not ours.
            if isinstance(answer, tuple) and (
                not self.status.pool_uuid or answer[1] == self.status.pool_uuid
            ):
                log.info("pool %s: master is now %s", self.status.pool_uuid, answer[0])
                return answer[0]
        return None

    async def _resync(self) -> None:
        self._set("connecting" if self.status.state != "connected" else "connected")
        pools = await self.client.call("pool.get_all")
        self.pool_ref = pools[0]
        self.token = await self.client.call("event.inject", "pool", self.pool_ref)
        records: dict[str, dict[str, dict[str, Any]]] = {}
        results = await asyncio.gather(
            *(self.client.call(f"{cls}.get_all_records") for cls in self.classes), return_exceptions=True
        )
        for cls, result in zip(self.classes, results, strict=True):
            if isinstance(result, XapiFailure) and result.xapi_code == "MESSAGE_METHOD_UNKNOWN":
                records[cls] = {}  # an older XAPI without this class
                continue
            if isinstance(result, BaseException):
                raise result
            records[cls] = result
        pool = next(iter(records.get("pool", {}).values()), None)
        if pool is not None:
            self.status.pool_uuid = pool["uuid"]
        self.known_hosts = sorted(
            {h["address"] for h in records.get("host", {}).values() if h.get("address")}
        )
        with bulk():  # synchronous: the collector is paused while everything is shaped, no longer
            self.sink.full(records)

    async def _follow(self) -> None:
        subscribed = [c.lower() for c in self.classes]
        while True:
            batch = await self.client.call_event_from(subscribed, self.token, EVENT_TIMEOUT)
            self._backoff.reset()  # following events again: the next fault starts from a short delay
            self.token = batch["token"]
            if batch["events"]:
                hosts = [e for e in batch["events"] if e["class"] == "host" and e.get("snapshot")]
                for ev in hosts:
                    address = ev["snapshot"].get("address")
                    if address and address not in self.known_hosts:
                        self.known_hosts.append(address)
                self.sink.events(batch["events"])
