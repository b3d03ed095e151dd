"""Records as the wire sends them, encoded once per change and reused (get_record, get_all_records, events).

A handler returns a :class:`LazyRecords` or :class:`LazyRecord`; the codec of the connection asks it for
its XML-RPC or JSON text, which comes from the database's per-record cache when the record has not
changed since it was last encoded.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .wire import xml_value

if TYPE_CHECKING:
    from .database import Database
    from .dispatch import Call


def _encoded(db: Database, cls: str, ref: str, fmt: str) -> str:
    cached = db.encoded.get(ref)
    if cached is None:
        cached = db.encoded[ref] = {}
    text = cached.get(fmt)
    if text is None:
        record = db.tables[cls][ref]
        if fmt == "xml":
            text = xml_value(record)
        else:
            text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
        cached[fmt] = text
    return text


class LazyRecord:
    """One record, encoded on demand."""

    __slots__ = ("cls", "db", "ref")

    def __init__(self, db: Database, cls: str, ref: str) -> None:
        self.db, self.cls, self.ref = db, cls, ref

    def xapi_xml(self) -> str:
        """The record as an XML-RPC ``<value><struct>``."""
        return _encoded(self.db, self.cls, self.ref, "xml")

    def xapi_json(self) -> str:
        """The record as a JSON object."""
        return _encoded(self.db, self.cls, self.ref, "json")

    def plain(self) -> dict[str, Any]:
        """A copy of the record as a plain dict."""
        return dict(self.db.tables[self.cls][self.ref])


class LazyRecords:
    """Every record of a class, as ``{ref: record}``."""

    __slots__ = ("cls", "db", "refs")

    def __init__(self, db: Database, cls: str) -> None:
        self.db, self.cls = db, cls
        self.refs = list(db.tables[cls])

    def xapi_xml(self) -> str:
        """The map as an XML-RPC ``<value><struct>``."""
        db, cls = self.db, self.cls
        parts = ["<value><struct>"]
        for ref in self.refs:
            if ref in db.tables[cls]:
                parts.append(f"<member><name>{ref}</name>{_encoded(db, cls, ref, 'xml')}</member>")
        parts.append("</struct></value>")
        return "".join(parts)

    def xapi_json(self) -> str:
        """The map as a JSON object."""
        db, cls = self.db, self.cls
        body = ",".join(
            f'"{ref}":{_encoded(db, cls, ref, "json")}' for ref in self.refs if ref in db.tables[cls]
        )
        return "{" + body + "}"

    def plain(self) -> dict[str, Any]:
        """A copy as a plain dict of records."""
        return {
            ref: dict(self.db.tables[self.cls][ref]) for ref in self.refs if ref in self.db.tables[self.cls]
        }


def encoded_record(ctx: Call, cls: str, ref: str) -> LazyRecord:
    """The record of ``ref`` for a reply."""
    return LazyRecord(ctx.db, cls, ref)


def encoded_records(ctx: Call, cls: str) -> LazyRecords:
    """All records of ``cls`` for a reply."""
    return LazyRecords(ctx.db, cls)
