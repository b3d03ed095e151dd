"""event.from semantics on the database: coalescing, add/mod/del, tokens, bounded history."""

import asyncio

import pytest

from xapisim.database import Database
from xapisim.datamodel import load_datamodel
from xapisim.errors import Failure
from xapisim.messages.event import collect, make_token, parse_subscriptions, parse_token


@pytest.fixture
def db():
    d = Database(load_datamodel(), history=10)
    d.loaded(100)
    return d


def ops(events):
    return [(e["class"], e["operation"], e["ref"]) for e in events]


def test_events_coalesce_many_changes_into_one_mod(db):
    vm = db.create("VM", {"name_label": "a"})
    since = db.generation
    for n in range(5):
        db.update("VM", vm, name_label=f"n{n}")
    events = collect(db, parse_subscriptions(["vm"]), since)
    assert ops(events) == [("vm", "mod", vm)]
    assert events[0]["id"] == str(db.generation) and events[0]["snapshot"].plain()["name_label"] == "n4"


def test_events_new_object_gives_add_and_mod(db):
    since = db.generation
    vm = db.create("VM", {"name_label": "a"})
    assert ops(collect(db, parse_subscriptions(["*"]), since)) == [("vm", "add", vm), ("vm", "mod", vm)]


def test_events_created_and_deleted_in_window_gives_nothing(db):
    since = db.generation
    vm = db.create("VM", {})
    db.destroy("VM", vm)
    assert collect(db, parse_subscriptions(["vm"]), since) == []


def test_events_delete_has_no_snapshot(db):
    vm = db.create("VM", {})
    since = db.generation
    db.destroy("VM", vm)
    (event,) = collect(db, parse_subscriptions(["VM"]), since)
    assert event["operation"] == "del" and "snapshot" not in event


def test_events_relations_emit_mod_on_the_other_side(db):
    vm = db.create("VM", {})
    since = db.generation
    vbd = db.create("VBD", {"VM": vm})
    assert db.records("VM")[vm]["VBDs"] == [vbd]
    assert ("vm", "mod", vm) in ops(collect(db, parse_subscriptions(["vm", "vbd"]), since))
    db.destroy("VBD", vbd)
    assert db.records("VM")[vm]["VBDs"] == []


def test_events_subscriptions_filter_by_class_and_object(db):
    a, b = db.create("VM", {}), db.create("VM", {})
    since = db.generation
    db.update("VM", a, name_label="x")
    db.update("VM", b, name_label="y")
    db.create("network", {})
    assert ops(collect(db, parse_subscriptions([f"vm/{b}"]), since)) == [("vm", "mod", b)]
    assert {e["class"] for e in collect(db, parse_subscriptions(["network"]), since)} == {"network"}


@pytest.mark.parametrize("bad", ["vm/", "/x", "vm/a/b", ""])
def test_events_subscription_parse_failure(bad):
    with pytest.raises(Failure) as e:
        parse_subscriptions([bad])
    assert e.value.description == ["EVENT_SUBSCRIPTION_PARSE_FAILURE", bad]


def test_events_tokens_are_xapi_format():
    assert make_token(42) == "00000000000000000042,00000000000000000000"
    assert parse_token(make_token(42)) == 42 and parse_token("") == 0
    for bad in ["garbage", "1,2,3", "a,b", "-1,0"]:
        with pytest.raises(Failure) as e:
            parse_token(bad)
        assert e.value.description == ["EVENT_FROM_TOKEN_PARSE_FAILURE", bad]


def test_events_history_is_bounded(db):
    vm = db.create("VM", {})
    token = db.generation
    for n in range(30):  # more than twice the capacity of 10
        db.update("VM", vm, name_label=str(n))
    assert db.changes.lost(token)
    assert not db.changes.lost(db.generation - 5)
    db.overflow_history()
    assert db.changes.lost(db.generation - 1) and not db.changes.lost(db.generation)


async def test_events_waiters_wake_on_change(db):
    gen = db.generation
    waiter = asyncio.create_task(db.wait_change(gen, 5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    db.create("VM", {})
    assert await asyncio.wait_for(waiter, 1) is True
    assert await db.wait_change(db.generation, 0.01) is False
