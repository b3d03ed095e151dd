"""Value representations shared by the database, the loader and the wire codecs.

Values are kept in the shapes JSON-RPC sends them in (str, int, float, bool, list, dict with string
keys); the one type JSON cannot tell apart, a datetime, is a ``str`` subclass so that XML-RPC can still
encode it as ``dateTime.iso8601`` while JSON encodes it as the plain string XAPI sends.
"""

from __future__ import annotations

import time
import uuid as _uuid

NULL_REF = "OpaqueRef:NULL"


class I32(int):
    """A 32-bit int, which XML-RPC writes as ``<i4>`` (xapi uses it only for ``valid_ref_counts``)."""

    __slots__ = ()


class XDateTime(str):
    """A XAPI datetime, kept in XAPI's wire spelling ``YYYYMMDDTHH:MM:SSZ``."""

    __slots__ = ()


def now() -> XDateTime:
    """The current time as XAPI writes it."""
    return XDateTime(time.strftime("%Y%m%dT%H:%M:%SZ", time.gmtime()))


def new_ref() -> str:
    """A fresh opaque reference, in XAPI's ``OpaqueRef:<uuid>`` form."""
    return f"OpaqueRef:{_uuid.uuid4()}"


def new_uuid() -> str:
    """A fresh object uuid."""
    return str(_uuid.uuid4())


def normalize_datetime(text: str) -> XDateTime:
    """Accept the datetime spellings clients send (``2024-01-02T03:04:05Z``, no ``Z``…) as XAPI's."""
    t = text.strip()
    if len(t) >= 10 and t[4] == "-" and t[7] == "-":
        t = t[:4] + t[5:7] + t[8:]
    t = t.replace("-", "")
    if "." in t:
        t = t.split(".", 1)[0] + ("Z" if t.endswith("Z") else "")
    if not t.endswith("Z"):
        t += "Z"
    return XDateTime(t)
