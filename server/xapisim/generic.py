"""The implicit messages every class has, derived from the data model: get/set/add/remove/create/destroy.

Each is built once per (class, message) from the message's name and the field it names, so the set of
answered messages is exactly the data model's.
"""

from __future__ import annotations

from typing import Any

from .call import Call, Handler
from .datamodel import Class, Message
from .errors import Failure
from .records import LazyRecord, LazyRecords


def record_of(ctx: Call, cls: str, ref: str) -> dict[str, Any]:
    """The record of ``ref`` in ``cls`` or HANDLE_INVALID, as xapi raises it."""
    record = ctx.db.get(cls, ref)
    if record is None:
        raise Failure("HANDLE_INVALID", cls, ref)
    return record


_BUILT: dict[tuple[str, str], Handler] = {}


def generic_handler(cls: Class, message: Message) -> Handler:
    """The implementation of one implicit message (built once per class and message)."""
    key = (cls.name, message.name)
    if key not in _BUILT:
        _BUILT[key] = _build(cls, message)
    return _BUILT[key]


def _build(cls: Class, message: Message) -> Handler:
    name = message.name
    c = cls.name
    if name == "get_all":

        async def get_all(ctx: Call) -> Any:
            return list(ctx.db.records(c))

        return get_all
    if name == "get_all_records":

        async def get_all_records(ctx: Call) -> Any:
            return LazyRecords(ctx.db, c)

        return get_all_records
    if name == "get_record":

        async def get_record(ctx: Call, ref: str) -> Any:
            record_of(ctx, c, ref)
            return LazyRecord(ctx.db, c, ref)

        return get_record
    if name == "get_by_uuid":

        async def get_by_uuid(ctx: Call, uuid: str) -> Any:
            ref = ctx.db.by_uuid(c, uuid)
            if ref is None:
                raise Failure("UUID_INVALID", c, uuid)
            return ref

        return get_by_uuid
    if name == "get_by_name_label":

        async def get_by_name_label(ctx: Call, label: str) -> Any:
            return [ref for ref, r in ctx.db.records(c).items() if r.get("name_label") == label]

        return get_by_name_label
    if name == "create":

        async def create(ctx: Call, fields: dict[str, Any]) -> Any:
            return ctx.db.create(c, _writable(cls, fields))

        return create
    if name == "destroy":

        async def destroy(ctx: Call, ref: str) -> Any:
            record_of(ctx, c, ref)
            ctx.db.destroy(c, ref)
            return ""

        return destroy
    for prefix, make in _ACCESSORS:
        if name.startswith(prefix) and name[len(prefix) :] in cls.fields:
            return make(c, name[len(prefix) :])
    raise Failure("NOT_IMPLEMENTED", f"{c}.{name}")


_SHAPES = {
    "add_to_": (["key", "value"], "map"),
    "remove_from_": (["key"], "map"),
    "set_": (["value"], None),
    "add_": (["value"], "set"),
    "remove_": (["value"], "set"),
}


def accessor(cls: Class, message: Message) -> Handler | None:
    """The implicit-style accessor for an explicit message of that shape (the object, then the accessor's
    own parameters, e.g. ``SR.set_name_label(sr, value)``), or None."""
    params = message.params[1:] if message.takes_session else message.params
    for prefix, make in _ACCESSORS:
        if prefix == "get_" or not message.name.startswith(prefix):
            continue
        field = cls.fields.get(message.name[len(prefix) :])
        shape, kind = _SHAPES[prefix]
        if (
            field is not None
            and params
            and params[0].type.kind == "ref"
            and params[0].type.name == cls.name
            and [p.name for p in params[1:]] == shape
            and (kind is None or field.type.kind == kind)
        ):
            return make(cls.name, field.name)
    return None


def _writable(cls: Class, fields: dict[str, Any]) -> dict[str, Any]:
    # A constructor takes the RW and RO/constructor fields; runtime fields keep their defaults.
    return {
        k: v
        for k, v in fields.items()
        if k in cls.fields and cls.fields[k].qualifier != "RO/runtime" and k != "uuid"
    }


def _getter(c: str, f: str) -> Handler:
    async def get(ctx: Call, ref: str) -> Any:
        return record_of(ctx, c, ref)[f]

    return get


def setter(c: str, f: str) -> Handler:
    """The plain setter of field ``f`` of class ``c``."""

    async def set_(ctx: Call, ref: str, value: Any) -> Any:
        record_of(ctx, c, ref)
        ctx.db.update(c, ref, **{f: value})
        return ""

    return set_


def _map_add(c: str, f: str) -> Handler:
    async def add_to(ctx: Call, ref: str, key: str, value: Any) -> Any:
        current = record_of(ctx, c, ref)[f]
        if key in current:
            raise Failure("MAP_DUPLICATE_KEY", c, f, ref, key)
        ctx.db.update(c, ref, **{f: {**current, key: value}})
        return ""

    return add_to


def _map_remove(c: str, f: str) -> Handler:
    async def remove_from(ctx: Call, ref: str, key: str) -> Any:
        current = record_of(ctx, c, ref)[f]
        if key in current:
            ctx.db.update(c, ref, **{f: {k: v for k, v in current.items() if k != key}})
        return ""

    return remove_from


def _set_add(c: str, f: str) -> Handler:
    async def add(ctx: Call, ref: str, value: Any) -> Any:
        current = record_of(ctx, c, ref)[f]
        if value not in current:
            ctx.db.update(c, ref, **{f: [*current, value]})
        return ""

    return add


def _set_remove(c: str, f: str) -> Handler:
    async def remove(ctx: Call, ref: str, value: Any) -> Any:
        current = record_of(ctx, c, ref)[f]
        if value in current:
            ctx.db.update(c, ref, **{f: [v for v in current if v != value]})
        return ""

    return remove


# Longest prefixes first: "remove_from_" must win over "remove_".
_ACCESSORS = (
    ("add_to_", _map_add),
    ("remove_from_", _map_remove),
    ("get_", _getter),
    ("set_", setter),
    ("add_", _set_add),
    ("remove_", _set_remove),
)
