"""Read XAPI database dumps (``state.db`` / ``xapi-db.xml``) into a :class:`Database`.

Tolerant of the dumps of every XAPI version: unknown tables and fields are skipped (and counted),
field and class names are matched without regard to case, values that do not parse as their type keep
the field's default, fields missing from old dumps take the data model's defaults, and one-to-many sets
are recomputed from the single-reference side rather than trusted.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .database import Database
from .datamodel import DataModel, Field, Type
from .sexpr import SExpr, SExprError, parse_sexpr, unescape_spaces
from .values import NULL_REF, XDateTime, normalize_datetime

log = logging.getLogger(__name__)

# Tables older dumps name differently from the current data model.
_TABLE_ALIASES = {"vmpp": "VMPP", "vm_appliance": "VM_appliance", "vmss": "VMSS"}


class DumpError(ValueError):
    """A file that is not an XAPI database dump."""


@dataclass
class LoadReport:
    """What a load kept and what it had to skip."""

    manifest: dict[str, str] = field(default_factory=dict)
    rows: Counter[str] = field(default_factory=Counter)
    unknown_tables: Counter[str] = field(default_factory=Counter)
    unknown_fields: Counter[str] = field(default_factory=Counter)
    bad_values: Counter[str] = field(default_factory=Counter)


def convert(typ: Type, raw: str) -> Any:
    """Turn a dump's attribute text (already unescaped) into a value of ``typ``."""
    kind = typ.kind
    if kind in ("string", "enum", "ref"):
        return raw if raw or kind != "ref" else NULL_REF
    if kind == "int":
        return int(float(raw)) if raw else 0
    if kind == "float":
        return float(raw) if raw else 0.0
    if kind == "bool":
        if raw not in ("true", "false"):
            raise ValueError(f"not a bool: {raw!r}")
        return raw == "true"
    if kind == "datetime":
        return normalize_datetime(raw) if raw else XDateTime("19700101T00:00:00Z")
    if kind in ("set", "map"):
        return from_sexpr(typ, parse_sexpr(raw) if raw.strip() else [])
    if kind == "option":
        assert typ.item is not None
        return convert(typ.item, raw)
    return raw


def from_sexpr(typ: Type, value: SExpr) -> Any:
    """Convert a parsed S-expression to a set or map of ``typ``."""
    if typ.kind == "set":
        assert typ.item is not None
        if not isinstance(value, list):
            raise ValueError("set is not a list")
        return [_atom(typ.item, v) for v in value]
    if typ.kind == "map":
        assert typ.key is not None and typ.item is not None
        if not isinstance(value, list):
            raise ValueError("map is not a list")
        out = {}
        for pair in value:
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
                raise ValueError("map entry is not a pair")
            out[pair[0]] = _atom(typ.item, pair[1])
        return out
    if isinstance(value, list):
        raise ValueError(f"{typ} is not a list")
    return convert(typ, value)


def _atom(typ: Type, value: SExpr) -> Any:
    if typ.kind in ("set", "map"):
        # Nested collections are written as strings holding another S-expression.
        inner = parse_sexpr(value) if isinstance(value, str) else value
        return from_sexpr(typ, inner)
    if isinstance(value, list):
        raise ValueError(f"{typ} is not an atom")
    return convert(typ, value)


def load_dump(path: str | Path, dm: DataModel, db: Database | None = None) -> tuple[Database, LoadReport]:
    """Load one dump into a new (or the given) database."""
    db = db or Database(dm)
    report = LoadReport()
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as e:
        raise DumpError(f"{path}: not well-formed XML: {e}") from e
    if root.tag != "database":
        raise DumpError(f"{path}: root element is <{root.tag}>, expected <database>")
    manifest = root.find("manifest")
    if manifest is not None:
        report.manifest = {p.get("key", ""): p.get("value", "") for p in manifest}
    for table in root.iter("table"):
        name = table.get("name", "")
        cls = dm.find(_TABLE_ALIASES.get(name.lower(), name))
        if cls is None:
            report.unknown_tables[name] += len(table)
            continue
        fields_by_lower = {f.lower(): f for f in cls.fields}
        for row in table:
            ref = row.get("ref") or row.get("_ref")
            if not ref:
                continue
            record = dm.new_record(cls)
            for attr, raw in row.attrib.items():
                if attr.startswith("_") or attr == "ref":
                    continue
                fname = _field_name(attr, fields_by_lower)
                if fname is None:
                    report.unknown_fields[f"{cls.name}.{attr}"] += 1
                    continue
                f: Field = cls.fields[fname]
                try:
                    record[fname] = convert(f.type, unescape_spaces(raw))
                except (ValueError, SExprError):
                    report.bad_values[f"{cls.name}.{fname}"] += 1
            db.load(cls.name, ref, record, _int(row.get("__ctime")), _int(row.get("__mtime")))
            report.rows[cls.name] += 1
    db.recompute_relations()
    db.loaded(_int(report.manifest.get("generation_count")))
    if report.unknown_fields or report.unknown_tables or report.bad_values:
        log.info(
            "%s: skipped %d unknown tables, %d unknown fields, %d unparsable values",
            path,
            len(report.unknown_tables),
            len(report.unknown_fields),
            len(report.bad_values),
        )
    return db, report


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _field_name(attr: str, fields_by_lower: dict[str, str]) -> str | None:
    return fields_by_lower.get(attr.replace("__", "_").lower())
