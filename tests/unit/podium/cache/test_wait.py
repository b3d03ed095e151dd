"""Waiting on the object cache: woken by batches and status changes, never by a timer."""

from __future__ import annotations

import asyncio

import pytest

from podium.cache import KEPT_CLASSES, ObjectCache, PoolCache
from podium.xapi import Status, Unreachable, XapiClient, XapiFailure
from podium.xapi.task import TaskHandle

POOL = {"OpaqueRef:p": {"uuid": "p-uuid", "name_label": "p", "master": "OpaqueRef:NULL"}}


def task(status: str, **fields: object) -> dict[str, object]:
    return {
        "uuid": "t-uuid",
        "name_label": "Async.VM.clone",
        "status": status,
        "progress": 0.5,
        "result": "",
        "error_info": [],
        "other_config": {},
        "resident_on": "OpaqueRef:NULL",
        **fields,
    }


def pool_cache() -> PoolCache:
    cache = PoolCache(ObjectCache(), list(KEPT_CLASSES))
    cache.full({"pool": POOL, "task": {"OpaqueRef:t": task("pending")}})
    return cache


def mod(ref: str, snapshot: dict[str, object], cls: str = "task") -> dict[str, object]:
    return {"class": cls, "operation": "mod", "ref": ref, "snapshot": snapshot}


async def test_an_answer_already_true_returns_at_once():
    objects = ObjectCache()
    assert await objects.wait_for(lambda: "yes", 0.01) == "yes"


async def test_a_waiter_wakes_on_the_batch_that_makes_it_true_and_only_then():
    objects = ObjectCache()
    asked = 0

    def seen() -> dict[str, object] | None:
        nonlocal asked
        asked += 1
        return objects.get("a")

    waiting = asyncio.ensure_future(objects.wait_for(seen, 5))
    await asyncio.sleep(0.2)  # no batch: asked once, not on a timer
    assert asked == 1 and not waiting.done()
    objects.apply({"b": {"id": "b", "type": "VM"}}, [])
    objects.apply({"a": {"id": "a", "type": "VM"}}, [])
    assert (await waiting)["id"] == "a" and asked == 3


async def test_a_timeout_raises_and_leaves_no_waiter_behind():
    objects = ObjectCache()
    with pytest.raises(TimeoutError):
        await objects.wait_for(lambda: None, 0.05)
    waiting = asyncio.ensure_future(objects.wait_for(lambda: None, 5))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert objects._waiters == []


async def test_what_the_predicate_raises_reaches_the_waiter():
    objects = ObjectCache()
    calls = iter([None, ValueError("broken")])

    def predicate() -> None:
        answer = next(calls)
        if isinstance(answer, Exception):
            raise answer

    waiting = asyncio.ensure_future(objects.wait_for(predicate, 5))
    await asyncio.sleep(0)
    objects.apply({"a": {"id": "a", "type": "VM"}}, [])
    with pytest.raises(ValueError, match="broken"):
        await waiting


async def test_a_task_ends_when_its_event_says_so():
    cache = pool_cache()
    waiting = asyncio.ensure_future(cache.task_ended("OpaqueRef:t", 5))
    cache.events([mod("OpaqueRef:t", task("pending", progress=0.9))])
    await asyncio.sleep(0)
    assert not waiting.done()
    cache.events([mod("OpaqueRef:t", task("success", result="<value>OpaqueRef:vm</value>"))])
    assert (await waiting)["result"] == "<value>OpaqueRef:vm</value>"


async def test_a_task_handle_raises_the_failure_its_task_ended_in():
    cache = pool_cache()
    client = XapiClient("http://127.0.0.1:9", "root", "")  # never connected: the wait needs no call
    client.tasks = cache
    waiting = asyncio.ensure_future(TaskHandle(client, "OpaqueRef:t").result(5))
    await asyncio.sleep(0)
    cache.events([mod("OpaqueRef:t", task("failure", error_info=["VM_BAD_POWER_STATE", "x", "a", "b"]))])
    with pytest.raises(XapiFailure) as e:
        await waiting
    assert e.value.xapi_code == "VM_BAD_POWER_STATE" and e.value.params == ["x", "a", "b"]
    await client.close()


async def test_a_lost_connection_fails_the_waiters_of_its_tasks_at_once():
    cache = pool_cache()
    waiting = asyncio.ensure_future(cache.task_ended("OpaqueRef:t", 3600))
    await asyncio.sleep(0)
    cache.status(Status("disconnected", "connection reset"))
    with pytest.raises(Unreachable):
        await asyncio.wait_for(waiting, 1)
    with pytest.raises(Unreachable):  # and whoever starts waiting while it is lost
        await cache.task_ended("OpaqueRef:t", 3600)


async def test_a_task_destroyed_before_it_ended_is_handle_invalid():
    cache = pool_cache()
    waiting = asyncio.ensure_future(cache.task_ended("OpaqueRef:t", 5))
    await asyncio.sleep(0)
    cache.events([{"class": "task", "operation": "del", "ref": "OpaqueRef:t"}])
    with pytest.raises(XapiFailure, match="HANDLE_INVALID"):
        await waiting
