"""The object cache: every pool's objects in Xen Orchestra's shape, indexed, with a change feed.

One writer (each pool's event loop, through :class:`~podium.cache.pool_cache.PoolCache`), many readers.
Every change is one :class:`Batch` per XAPI event batch: the objects that entered (new or changed)
and the objects that left, delivered to each subscriber in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

log = logging.getLogger(__name__)

Obj = dict[str, Any]


@dataclass(frozen=True)
class Batch:
    """One change: ``enter`` maps id to the new object, ``exit`` id to the object that left.

    ``encoded`` is a place for the encodings subscribers make of the whole batch, so that clients who
    may see all of it share one encoding instead of making one each.
    """

    enter: dict[str, Obj] = field(default_factory=dict)
    exit: dict[str, Obj] = field(default_factory=dict)
    encoded: dict[str, bytes] = field(default_factory=dict, compare=False)
    ancestors: dict[str, tuple[str, ...]] = field(default_factory=dict, compare=False)  # see auth.acls

    def __bool__(self) -> bool:
        return bool(self.enter or self.exit)


Subscriber = Callable[[Batch], None]
T = TypeVar("T")


@dataclass(eq=False)
class _Waiter:
    """A caller of :meth:`ObjectCache.wait_for`: its test, and the future its answer goes to."""

    predicate: Callable[[], Any]
    future: asyncio.Future[Any]


class ObjectCache:
    """All objects by id, by type and by pool."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self.by_type: dict[str, dict[str, Obj]] = {}
        self.by_pool: dict[str, dict[str, Obj]] = {}
        self._subscribers: list[Subscriber] = []
        self._waiters: list[_Waiter] = []

    def __len__(self) -> int:
        return len(self.objects)

    def __iter__(self) -> Iterator[Obj]:
        return iter(self.objects.values())

    def get(self, id_: str) -> Obj | None:
        """The object of this id."""
        return self.objects.get(id_)

    def of_type(self, type_: str) -> dict[str, Obj]:
        """The objects of one type, by id (live: do not mutate)."""
        return self.by_type.get(type_, {})

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Receive every batch from now on; returns the function that unsubscribes."""
        self._subscribers.append(fn)

        def unsubscribe() -> None:
            if fn in self._subscribers:
                self._subscribers.remove(fn)

        return unsubscribe

    async def wait_for(self, predicate: Callable[[], T | None], timeout: float) -> T:
        """Wait until ``predicate()`` answers something true, and return that answer.

        It is asked now, then after every batch (and every :meth:`wake`), never on a timer; what it raises
        is raised to the caller. :class:`TimeoutError` after ``timeout`` seconds. Keep it cheap: it runs
        once per batch while anyone waits.
        """
        now = predicate()
        if now:
            return now
        waiter = _Waiter(predicate, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        try:
            answer = await asyncio.wait_for(waiter.future, timeout)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        return answer  # type: ignore[no-any-return]  # the future holds what the predicate answered

    def wake(self) -> None:
        """Ask every waiter's predicate again: something they read besides the objects changed (a pool's
        connection status)."""
        for waiter in list(self._waiters):
            if waiter.future.done():
                continue
            try:
                answer = waiter.predicate()
            except Exception as e:
                waiter.future.set_exception(e)
                continue
            if answer:
                waiter.future.set_result(answer)

    def apply(self, enter: dict[str, Obj], exit_ids: list[str] | set[str], pool: str | None = None) -> Batch:
        """Change the cache and tell every subscriber; returns the batch (empty when nothing changed).

        With ``pool``, an exit removes an object only if it is that pool's: a VM moved to another pool keeps
        its uuid, and the new pool may report it before the old one reports it gone.
        """
        left: dict[str, Obj] = {}
        for id_ in exit_ids:
            old = self.objects.get(id_)
            if old is None or (pool is not None and old.get("$poolId", pool) != pool):
                continue
            del self.objects[id_]
            self._unindex(id_, old)
            left[id_] = old
        for id_, obj in enter.items():
            old = self.objects.get(id_)
            if old is not None:
                self._unindex(id_, old)
            self.objects[id_] = obj
            self.by_type.setdefault(obj["type"], {})[id_] = obj
            pool = obj.get("$poolId")
            if pool:
                self.by_pool.setdefault(pool, {})[id_] = obj
        batch = Batch(enter, left)
        if batch:
            for fn in list(self._subscribers):
                try:
                    fn(batch)
                except Exception:  # a subscriber's bug must not stop the event loop of a pool
                    log.exception("object cache subscriber failed")
            if self._waiters:
                self.wake()
        return batch

    def _unindex(self, id_: str, obj: Obj) -> None:
        self.by_type.get(obj["type"], {}).pop(id_, None)
        pool = obj.get("$poolId")
        if pool:
            self.by_pool.get(pool, {}).pop(id_, None)
