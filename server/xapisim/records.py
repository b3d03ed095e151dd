"""Records as the wire sends them, encoded once per change and reused (get_record, get_all_records, events).

A handler returns a :class:`LazyRecords` or :class:`LazyRecord`; the codec of the connection asks it for
its XML-RPC or JSON text, which comes from the database's per-record cache when the record has not
changed since it was last encoded.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import orjson

from .wire import record_encoder

if TYPE_CHECKING:
    from .database import Database


_ENCODERS: dict[tuple[int, str], Any] = {}


def _xml_encoder(db: Database, cls: str) -> Any:
    key = (id(db.dm), cls)
    if key not in _ENCODERS:
        _ENCODERS[key] = record_encoder({n: f.type for n, f in db.cls(cls).fields.items()})
    return _ENCODERS[key]


def _encoded(db: Database, cls: str, ref: str, fmt: str) -> bytes:
    """A record's encoding (UTF-8), from the cache while the record is unchanged."""
    cached = db.encoded.get(ref)
    if cached is None:
        cached = db.encoded[ref] = {}
    data: bytes | None = cached.get(fmt)
    if data is None:
        record = db.tables[cls][ref]
        data = _xml_encoder(db, cls)(record).encode() if fmt == "xml" else orjson.dumps(record)
        cached[fmt] = data
    return data


class LazyRecord:
    """One record, encoded on demand."""

    __slots__ = ("cls", "db", "ref")

    def __init__(self, db: Database, cls: str, ref: str) -> None:
        self.db, self.cls, self.ref = db, cls, ref

    def xapi_xml_parts(self, parts: list[str | bytes]) -> None:
        """Append the record as an XML-RPC ``<value><struct>``."""
        parts.append(_encoded(self.db, self.cls, self.ref, "xml"))

    def xapi_json_parts(self, parts: list[bytes]) -> None:
        """Append the record as a JSON object."""
        parts.append(_encoded(self.db, self.cls, self.ref, "json"))

    def plain(self) -> dict[str, Any]:
        """A copy of the record as a plain dict."""
        return dict(self.db.tables[self.cls][self.ref])


class LazyRecords:
    """Every record of a class, as ``{ref: record}``."""

    __slots__ = ("cls", "db", "refs")

    def __init__(self, db: Database, cls: str) -> None:
        self.db, self.cls = db, cls
        self.refs = list(db.tables[cls])

    def xapi_xml_parts(self, parts: list[str | bytes]) -> None:
        """Append the map as an XML-RPC ``<value><struct>``, the cached records spliced in, not copied."""
        db, cls = self.db, self.cls
        table = db.tables[cls]
        parts.append("<value><struct>")
        for ref in self.refs:
            if ref in table:
                parts.append(f"<member><name>{ref}</name>")
                parts.append(_encoded(db, cls, ref, "xml"))
                parts.append("</member>")
        parts.append("</struct></value>")

    def xapi_json_parts(self, parts: list[bytes]) -> None:
        """Append the map as a JSON object, the cached records spliced in."""
        db, cls = self.db, self.cls
        table = db.tables[cls]
        parts.append(b"{")
        first = True
        for ref in self.refs:
            if ref in table:
                parts.append(b'"%s":' % ref.encode() if first else b',"%s":' % ref.encode())
                parts.append(_encoded(db, cls, ref, "json"))
                first = False
        parts.append(b"}")

    def plain(self) -> dict[str, Any]:
        """A copy as a plain dict of records."""
        return {
            ref: dict(self.db.tables[self.cls][ref]) for ref in self.refs if ref in self.db.tables[self.cls]
        }


async def warm(db: Database, chunk: int = 200) -> int:
    """Encode every record in both formats ahead of the first full read, yielding to the loop often."""
    done = 0
    for cls in list(db.tables):
        for ref in list(db.tables[cls]):
            if ref in db.tables[cls]:
                _encoded(db, cls, ref, "json")
                _encoded(db, cls, ref, "xml")
                done += 1
                if done % chunk == 0:
                    await asyncio.sleep(0)
    db.warmed = True
    return done
