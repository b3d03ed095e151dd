"""Helpers every shaper uses: numbers and times as Xen Orchestra writes them, links, and the common keys."""

from __future__ import annotations

import calendar
import time
from collections.abc import Callable
from typing import Any

from .reader import Reader
from .reader import Record as Record  # the shapers take it from here

Obj = dict[str, Any]
Shaper = Callable[[str, Record, Reader], Obj | None]

NULL = "OpaqueRef:NULL"
_EPOCH = "19700101T00:00:00Z"


def num(value: Any) -> int | float:
    """A number from a XAPI int, float or numeric string (XML-RPC sends int64 as text); NaN-free: 0."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0
        try:
            return int(text)
        except ValueError:
            try:
                return float(text)
            except ValueError:
                return 0
    return 0


def ts(value: Any) -> int | float | None:
    """Unix seconds from a XAPI datetime or a numeric string; None for empty or the epoch."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value or None
    text = str(value).strip()
    if len(text) == 18 and text[8] == "T" and text[-1] == "Z":  # XAPI's own 20240131T09:27:26Z
        if text == _EPOCH:
            return None
        try:
            return calendar.timegm(
                (
                    int(text[0:4]),
                    int(text[4:6]),
                    int(text[6:8]),
                    int(text[9:11]),
                    int(text[12:14]),
                    int(text[15:17]),
                )
            )
        except ValueError:
            return None
    try:
        n = float(text)
    except ValueError:
        pass
    else:
        return (int(n) if n.is_integer() else n) or None
    digits = text.replace("-", "").replace(":", "").rstrip("Z")
    try:
        parsed = time.strptime(digits[:15], "%Y%m%dT%H%M%S")
    except ValueError:
        return None
    return calendar.timegm(parsed) or None


def truthy(value: Any) -> bool:
    """XAPI's booleans, also when they come as strings."""
    if isinstance(value, str):
        return value.lower() == "true"
    return bool(value)


def link(reader: Reader, ref: Any) -> str | None:
    """The id of the object a reference points at (None for NULL or unknown)."""
    return reader.id(ref) if isinstance(ref, str) else None


def links(reader: Reader, refs: Any) -> list[str]:
    """The ids of a set of references (unknown ones left out)."""
    return reader.ids(refs) if isinstance(refs, list) else []


def put(obj: Obj, key: str, value: Any) -> None:
    """Set a key unless the value is None (Xen Orchestra leaves such keys out)."""
    if value is not None:
        obj[key] = value


def finish(obj: Obj, ref: str, rec: Record, reader: Reader, type_: str) -> Obj:
    """Add the keys every object has: id, type, uuid, $pool, $poolId, _xapiRef."""
    obj.setdefault("id", rec.get("uuid") or ref)
    obj.setdefault("type", type_)
    if "uuid" in rec:
        obj.setdefault("uuid", rec["uuid"])
    obj["$pool"] = reader.pool_id
    obj["$poolId"] = reader.pool_id
    obj["_xapiRef"] = ref
    return obj
