"""The XenAPI data model, read from xapi's own ``xenapi.json``: classes, fields, messages and types.

Everything generic the simulator does (defaults for missing fields, the implicit get/set/add/remove
messages, parameter counts and type checks) is derived from this file rather than written by hand,
so the simulator answers exactly the messages the real API has.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from .values import NULL_REF, XDateTime


@dataclass(frozen=True)
class Type:
    """A XenAPI type: kind is one of string, int, float, bool, datetime, ref, enum, set, map, record, option."""

    kind: str
    name: str = ""  # class for ref / record, enum name for enum
    key: Type | None = None  # map key
    item: Type | None = None  # set item, map value, option content

    def __str__(self) -> str:
        if self.kind in ("ref", "record"):
            return f"{self.name} {self.kind}"
        if self.kind == "enum":
            return f"enum {self.name}"
        if self.kind in ("set", "option"):
            return f"{self.item} {self.kind}"
        if self.kind == "map":
            return f"({self.key} -> {self.item}) map"
        return self.kind


_PRIMITIVES = {"string", "int", "float", "bool", "datetime", "void"}


@cache
def parse_type(text: str) -> Type:
    """Parse a type as xenapi.json writes it, e.g. ``(string -> enum vm_operations) map``."""
    text = text.strip()
    if text in _PRIMITIVES:
        return Type(text)
    if text == "an event batch":  # event.from's result, documented only in prose
        return Type("event_batch")
    if text.endswith(" map") and text.startswith("("):
        inner = text[1 : -len(" map")].strip()
        if not inner.endswith(")"):
            raise ValueError(f"unbalanced map type: {text}")
        inner = inner[:-1]
        depth = 0
        for i, ch in enumerate(inner):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and inner.startswith("->", i):
                return Type("map", key=parse_type(inner[:i]), item=parse_type(inner[i + 2 :]))
        raise ValueError(f"map type without '->': {text}")
    if text.startswith("(") and text.endswith(")"):
        return parse_type(text[1:-1])
    for suffix in ("set", "option"):
        if text.endswith(" " + suffix):
            return Type(suffix, item=parse_type(text[: -len(suffix) - 1]))
    if text.startswith("enum "):
        return Type("enum", name=text[5:].strip())
    if text.endswith(" ref"):
        return Type("ref", name=text[:-4].strip())
    if text.endswith(" record"):
        return Type("record", name=text[:-7].strip())
    raise ValueError(f"unknown XenAPI type: {text}")


@dataclass
class Field:
    """A field of a class, with its type and default."""

    name: str
    type: Type
    qualifier: str  # RW, RO/runtime, RO/constructor
    default: Any
    has_default: bool


@dataclass
class Param:
    """A parameter of a message; ``default`` is set when callers may leave it out (newer parameters)."""

    name: str
    type: Type
    default: Any = None
    has_default: bool = False


@dataclass
class Message:
    """A message (API call) of a class."""

    name: str
    params: list[Param]
    result: Type
    implicit: bool
    errors: list[str]

    @property
    def mandatory(self) -> int:
        """How many arguments (the session aside) a caller must pass: trailing defaults may be left out."""
        args = self.params[1:] if self.takes_session else self.params
        n = len(args)
        while n and args[n - 1].has_default:
            n -= 1
        return n

    @property
    def takes_session(self) -> bool:
        """Whether the first parameter is the session reference."""
        return bool(self.params) and self.params[0].type == Type("ref", "session")


@dataclass
class Class:
    """A class of the data model."""

    name: str
    fields: dict[str, Field]
    messages: dict[str, Message]
    enums: dict[str, list[str]] = field(default_factory=dict)


def default_value(typ: Type, text: str | None) -> Any:
    """Turn a default written in xenapi.json's notation into a value, or the type's zero value."""
    if text is None:
        return zero_value(typ)
    if typ.kind in ("string", "enum"):
        return text[1:-1] if len(text) >= 2 and text[0] == '"' and text[-1] == '"' else text
    if typ.kind == "ref":
        return NULL_REF if text in ("Null", "") else text
    if typ.kind == "int":
        return int(text)
    if typ.kind == "float":
        return float(text)
    if typ.kind == "bool":
        return text == "true"
    if typ.kind == "datetime":
        return XDateTime(text)
    if typ.kind == "set":
        body = text.strip()[1:-1].strip()
        assert typ.item is not None
        return [] if not body else [default_value(typ.item, x.strip()) for x in body.split(",")]
    if typ.kind == "map":
        body = text.strip()[1:-1].strip()
        assert typ.key is not None and typ.item is not None
        out = {}
        for k, v in re.findall(r'"([^"]*)"\s*->\s*"([^"]*)"', body):
            out[k] = default_value(typ.item, f'"{v}"')
        return out
    return zero_value(typ)


def zero_value(typ: Type) -> Any:
    """The value a field of this type takes when nothing else is known."""
    kind = typ.kind
    if kind in ("string", "enum"):
        return ""
    if kind == "ref":
        return NULL_REF
    if kind == "int":
        return 0
    if kind == "float":
        return 0.0
    if kind == "bool":
        return False
    if kind == "datetime":
        return XDateTime("19700101T00:00:00Z")
    if kind == "set":
        return []
    if kind == "map":
        return {}
    return ""


class DataModel:
    """All classes of the API, with lookups by exact and by lowercase name."""

    def __init__(
        self, raw: list[dict[str, Any]], param_defaults: dict[str, dict[str, Any]] | None = None
    ) -> None:
        param_defaults = param_defaults or {}
        self.classes: dict[str, Class] = {}
        self.enums: dict[str, list[str]] = {}
        for c in raw:
            enums = {e["name"]: [v["name"] for v in e["values"]] for e in c.get("enums", [])}
            self.enums.update(enums)
            fields = {}
            for f in c["fields"]:
                typ = parse_type(f["type"])
                fields[f["name"]] = Field(
                    name=f["name"],
                    type=typ,
                    qualifier=f["qualifier"],
                    default=default_value(typ, f.get("default")),
                    has_default="default" in f,
                )
            messages = {}
            for m in c["messages"]:
                defaults = param_defaults.get(f"{c['name']}.{m['name']}", {})
                params = [
                    Param(p["name"], parse_type(p["type"]), defaults.get(p["name"]), p["name"] in defaults)
                    for p in m["params"]
                ]
                messages[m["name"]] = Message(
                    name=m["name"],
                    params=params,
                    result=parse_type(m["result"][0]),
                    implicit=bool(m.get("implicit")),
                    errors=[e["name"] for e in m.get("errors", [])],
                )
            self.classes[c["name"]] = Class(c["name"], fields, messages, enums)
        self._lower = {name.lower(): cls for name, cls in self.classes.items()}
        # xapi's generated server matches each message under two names, "VM.start" and "VM_start"; the
        # first match wins there as here (no two names collide in the bundled model).
        self._messages: dict[str, tuple[Class, Message]] = {}
        for cls in self.classes.values():
            for msg in cls.messages.values():
                for sep in (".", "_"):
                    self._messages.setdefault(f"{cls.name}{sep}{msg.name}", (cls, msg))

    def get(self, name: str) -> Class | None:
        """The class of this exact name (as in method names: ``VM``, ``host``)."""
        return self.classes.get(name)

    def find(self, name: str) -> Class | None:
        """The class of this name, ignoring case (dumps and event subscriptions vary)."""
        return self.classes.get(name) or self._lower.get(name.lower())

    def message(self, name: str) -> tuple[Class, Message] | None:
        """The class and message a call names: ``Class.message``, or ``Class_message`` as xapi accepts too."""
        return self._messages.get(name)

    def new_record(self, cls: Class) -> dict[str, Any]:
        """A record of the class with every field at its default."""
        return {name: _copy(f.default) for name, f in cls.fields.items()}


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


@cache
def load_datamodel() -> DataModel:
    """The data model bundled with the simulator."""
    data = resources.files("xapisim").joinpath("data")
    with data.joinpath("xenapi.json").open("rb") as f, data.joinpath("param_defaults.json").open("rb") as g:
        return DataModel(json.load(f), json.load(g))
