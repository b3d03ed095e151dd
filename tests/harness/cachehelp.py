"""Helpers for tests of the cache: a watched pool, and the truth to compare it with."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from podium.cache import KEPT_CLASSES, ObjectCache, PoolCache
from podium.xapi import PoolWatcher, XapiClient

from .simproc import Sim


def master_url(sim: Sim, pool: int = 0) -> str:
    """The current master's URL, as the control surface knows it (it moves on failover)."""
    (host,) = [h for h in sim.ctl("GET", "/pools")[pool]["hosts"] if h["master"]]
    return str(host["url"])


async def truth(sim: Sim, url: str | None = None) -> dict[str, dict[str, Any]]:
    """The objects a fresh full read of the pool gives, by id."""
    client = XapiClient(url or master_url(sim), sim.user, sim.password)
    try:
        records = {cls: await client.call(f"{cls}.get_all_records") for cls in KEPT_CLASSES}
    finally:
        await client.close()
    objects = ObjectCache()
    PoolCache(objects, list(KEPT_CLASSES)).full(records)
    return dict(objects.objects)


class Watched:
    """A pool followed by Podium's event loop into an object cache."""

    def __init__(self, sim: Sim, url: str | None = None) -> None:
        self.sim = sim
        self.objects = ObjectCache()
        self.batches: list[Any] = []
        self.objects.subscribe(self.batches.append)
        self.client = XapiClient(url or sim.master().url, sim.user, sim.password)
        self.cache = PoolCache(self.objects, list(KEPT_CLASSES))
        self.watcher = PoolWatcher(self.client, self.cache, KEPT_CLASSES)
        self.task: asyncio.Task[None] | None = None

    async def wait(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out; status {self.watcher.status}")
            await asyncio.sleep(0.02)

    async def converge(self, timeout: float = 20.0) -> dict[str, dict[str, Any]]:
        """Wait until the cache equals a fresh read; returns the difference if it never does."""
        deadline = time.monotonic() + timeout
        while True:
            expected = await truth(self.sim)
            if self.objects.objects == expected:
                return {}
            if time.monotonic() > deadline:
                diff = {
                    k
                    for k in expected.keys() | self.objects.objects.keys()
                    if expected.get(k) != self.objects.objects.get(k)
                }
                return {k: (expected.get(k), self.objects.objects.get(k)) for k in sorted(diff)[:3]}
            await asyncio.sleep(0.2)


@asynccontextmanager
async def watched(sim: Sim, url: str | None = None) -> AsyncIterator[Watched]:
    w = Watched(sim, url)
    w.task = asyncio.create_task(w.watcher.run())
    try:
        await w.wait(lambda: w.watcher.status.state == "connected")
        yield w
    finally:
        w.task.cancel()
        try:
            await w.task
        except asyncio.CancelledError:
            pass
        await w.client.close()
