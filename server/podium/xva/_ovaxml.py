"""``ova.xml``: one XML-RPC ``<value>`` holding ``version`` and ``objects``, as XAPI's export.ml writes it.

Values decode to str, int, bool, float, dict, list, ``xmlrpc.client.DateTime`` (kept as its text, so that
``19700101T00:00:00Z`` survives a round trip) and bytes (base64). XAPI's "legacy" records carry every int
as a string; encoding does the same (a Python int is written as bare text), as XAPI and Xen Orchestra do.
"""

from __future__ import annotations

import base64
import datetime as dt
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape
from xmlrpc.client import DateTime

from ._errors import XvaError
from ._events import Header

OVA_XML = "ova.xml"
MAX_DEPTH = 64  # XAPI records nest 3 deep (struct → map → value); anything deeper is not an export


def _fail(problem: str) -> XvaError:
    return XvaError(OVA_XML, problem)


def _decode(el: ET.Element, depth: int) -> Any:
    if el.tag != "value":
        raise _fail(f"expected <value>, found <{el.tag}>")
    if depth > MAX_DEPTH:
        raise _fail(f"values nest deeper than {MAX_DEPTH} levels")
    kids = list(el)
    if not kids:
        return el.text or ""  # a bare <value>: a string, as XAPI writes them
    if len(kids) != 1:
        raise _fail("a <value> holds more than one element")
    kid = kids[0]
    tag, text = kid.tag, (kid.text or "")
    try:
        if tag == "string":
            return text
        if tag in ("int", "i4", "i8"):
            return int(text.strip())
        if tag == "boolean":
            if text.strip() not in ("0", "1"):
                raise ValueError(f"boolean {text!r}")
            return text.strip() == "1"
        if tag == "double":
            return float(text.strip())
        if tag == "dateTime.iso8601":
            return DateTime(text.strip())
        if tag == "base64":
            return base64.b64decode(text, validate=False)
        if tag == "nil":
            return None
    except ValueError as e:
        raise _fail(f"bad <{tag}>: {e}") from None
    if tag == "struct":
        out: dict[str, Any] = {}
        for member in kid:
            name, value = member.find("name"), member.find("value")
            if member.tag != "member" or name is None or value is None:
                raise _fail("a <struct> member lacks its <name> or <value>")
            out[name.text or ""] = _decode(value, depth + 1)
        return out
    if tag == "array":
        data = kid.find("data")
        if data is None:
            raise _fail("an <array> lacks its <data>")
        return [_decode(v, depth + 1) for v in data]
    raise _fail(f"unknown XML-RPC type <{tag}>")


def _text(snapshot: Mapping[str, Any], key: str) -> str:
    value = snapshot.get(key, "")
    return value if isinstance(value, str) else str(value)


def parse_ova(data: bytes, max_disk_size: int) -> Header:
    """Decode ova.xml and work out the disks the stream must carry; XvaError names ``ova.xml``."""
    if b"<!DOCTYPE" in data or b"<!ENTITY" in data:
        # XAPI never writes a DTD; refusing one shuts out entity-expansion bombs whatever expat does.
        raise _fail("has a DTD, which no XVA has")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise _fail(f"is not XML: {e}") from None
    top = _decode(root, 0)
    if not isinstance(top, dict) or not isinstance(top.get("version"), dict):
        raise _fail("lacks the struct of 'version' and 'objects'")
    objects = top.get("objects")
    if not isinstance(objects, list):
        raise _fail("lacks the 'objects' array")
    seen: set[str] = set()
    for obj in objects:
        ok = isinstance(obj, dict) and isinstance(obj.get("class"), str) and isinstance(obj.get("id"), str)
        if not ok or not isinstance(obj.get("snapshot"), dict):
            raise _fail("an object lacks its 'class', 'id' or 'snapshot' struct")
        if obj["id"] in seen:
            raise _fail(f"two objects have the id {obj['id']}")
        seen.add(obj["id"])
    return Header(top["version"], objects, expected_disks(objects, max_disk_size))


def export_vsn(version: Mapping[str, Any]) -> int:
    """The export format version, 0 when missing (as importexport.ml reads it)."""
    try:
        return int(version.get("export_vsn", 0))
    except (TypeError, ValueError):
        raise _fail(f"export_vsn {version.get('export_vsn')!r} is not a number") from None


def expected_disks(objects: list[dict[str, Any]], max_disk_size: int) -> dict[str, int]:
    """The disks XAPI's import reads from the stream, in its order (import.ml ``non_cdrom_vdis``).

    Those are the VDIs of VBDs other than CDs whose SR is not an ISO library, plus suspend images; XAPI
    then streams them sorted by id (stream_vdi.ml ``for_each_vdi``), each ``virtual_size`` bytes long.
    """
    by_id = {o["id"]: o for o in objects}

    def find(ref: str, cls: str, user: str) -> dict[str, Any]:
        obj = by_id.get(ref)
        if obj is None or obj["class"] != cls:
            raise _fail(f"{user} refers to {cls} {ref}, which is not in the export")
        snapshot: dict[str, Any] = obj["snapshot"]
        return snapshot

    wanted: set[str] = set()
    for obj in objects:
        snap = obj["snapshot"]
        if obj["class"] == "VBD" and _text(snap, "type").lower() != "cd":
            vdi_ref = _text(snap, "VDI")
            vdi = find(vdi_ref, "VDI", f"VBD {obj['id']}")
            sr = find(_text(vdi, "SR"), "SR", f"VDI {vdi_ref}")
            if _text(sr, "content_type") != "iso":
                wanted.add(vdi_ref)
        elif obj["class"] == "VDI" and _text(snap, "type") == "suspend":
            wanted.add(obj["id"])
    disks: dict[str, int] = {}
    for ref in sorted(wanted):  # OCaml's string compare and Python's agree on these ASCII ids
        raw = by_id[ref]["snapshot"].get("virtual_size")
        try:
            size = int(raw)
        except (TypeError, ValueError):
            raise _fail(f"VDI {ref} has no usable virtual_size ({raw!r})") from None
        if not 0 <= size <= max_disk_size:
            raise _fail(f"VDI {ref} has an absurd virtual_size {size} (the limit is {max_disk_size} bytes)")
        disks[ref] = size
    return disks


def _encode(value: Any, out: list[str], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"ova values nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, bool):  # before int: bool is an int
        out.append(f"<value><boolean>{int(value)}</boolean></value>")
    elif isinstance(value, str):
        out.append(f"<value>{escape(value)}</value>" if value else "<value/>")
    elif isinstance(value, int):
        out.append(f"<value>{value}</value>")  # XAPI's legacy records: ints as strings
    elif isinstance(value, float):
        out.append(f"<value><double>{value:.16g}</double></value>")
    elif isinstance(value, DateTime):
        out.append(f"<value><dateTime.iso8601>{escape(value.value)}</dateTime.iso8601></value>")
    elif isinstance(value, dt.datetime):
        stamp = value.astimezone(dt.UTC) if value.tzinfo else value
        out.append(f"<value><dateTime.iso8601>{stamp:%Y%m%dT%H:%M:%SZ}</dateTime.iso8601></value>")
    elif isinstance(value, Mapping):
        out.append("<value><struct>")
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"struct keys must be strings, not {key!r}")
            out.append(f"<member><name>{escape(key)}</name>")
            _encode(item, out, depth + 1)
            out.append("</member>")
        out.append("</struct></value>")
    elif isinstance(value, list | tuple):
        out.append("<value><array><data>")
        for item in value:
            _encode(item, out, depth + 1)
        out.append("</data></array></value>")
    else:
        raise TypeError(f"cannot write {type(value).__name__} into ova.xml")


def dump_ova(ova: Mapping[str, Any]) -> bytes:
    """ova.xml for ``{"version": {...}, "objects": [...]}``, in XAPI's layout (no XML declaration)."""
    out: list[str] = []
    _encode({"version": ova["version"], "objects": ova["objects"]}, out, 0)
    return "".join(out).encode()
