"""XAPI's two wire formats: XML-RPC (``/``, ``/RPC2``) and JSON-RPC v1/v2 (``/jsonrpc``).

XML-RPC is written the way xapi writes it: strings as bare ``<value>`` text, 64-bit ints as strings,
``<double>``, ``<boolean>``, ``<dateTime.iso8601>``, and every result wrapped in a
``{Status, Value}`` or ``{Status, ErrorDescription}`` struct. JSON-RPC carries the same values natively,
with failures as ``error: {code, message, data}``. Encoding is value-directed (see :mod:`.values`), so a
record can be encoded once and its text reused until it changes.
"""

from __future__ import annotations

import json
import math
import xmlrpc.client
from typing import Any
from xml.parsers.expat import ExpatError

import orjson

from .datamodel import Type
from .values import I32, XDateTime

_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class WireError(ValueError):
    """A request body that cannot be decoded."""


# --- XML-RPC -------------------------------------------------------------------------------------
def xml_value(value: Any) -> str:
    """Encode one value as an XML-RPC ``<value>`` element, as xapi does."""
    parts: list[Any] = []
    _xml(value, parts)
    return "".join(p.decode() if type(p) is bytes else p for p in parts)


def _escape(text: str) -> str:
    if "&" in text or "<" in text or ">" in text:
        return text.translate(_XML_ESCAPES)
    return text


_MEMBER_PREFIX: dict[str, str] = {}  # "<member><name>k</name>" by key: field names repeat in every record


def _member(key: str) -> str:
    prefix = _MEMBER_PREFIX.get(key)
    if prefix is None:
        prefix = f"<member><name>{_escape(key)}</name>"
        if len(_MEMBER_PREFIX) < 100_000:
            _MEMBER_PREFIX[key] = prefix
    return prefix


def _xml(value: Any, out: list[Any]) -> None:
    # ``out`` holds str, and the bytes of records cached already encoded (see records.py).
    append = out.append
    t = type(value)
    if t is str:
        append(f"<value>{_escape(value)}</value>")
    elif t is dict:
        append("<value><struct>")
        for k, v in value.items():
            append(_member(k if type(k) is str else str(k)))
            tv = type(v)
            if tv is str:
                append(f"<value>{_escape(v)}</value></member>")
            else:
                _xml(v, out)
                append("</member>")
        append("</struct></value>")
    elif t is list or t is tuple:
        if all(type(v) is str for v in value):
            append("<value><array><data>")
            append("".join(f"<value>{_escape(v)}</value>" for v in value))
            append("</data></array></value>")
        else:
            append("<value><array><data>")
            for v in value:
                _xml(v, out)
            append("</data></array></value>")
    elif t is bool:
        append("<value><boolean>1</boolean></value>" if value else "<value><boolean>0</boolean></value>")
    elif t is int:
        append(f"<value>{value}</value>")
    elif t is float:
        append(f"<value><double>{_float_text(value)}</double></value>")
    elif t is XDateTime:
        append(f"<value><dateTime.iso8601>{value}</dateTime.iso8601></value>")
    elif t is I32:
        append(f"<value><i4>{int(value)}</i4></value>")
    elif hasattr(value, "xapi_xml_parts"):
        value.xapi_xml_parts(out)
    elif value is None:
        append("<value></value>")
    elif isinstance(value, str):
        _xml(str(value), out)
    else:
        raise TypeError(f"cannot encode {t.__name__} in XML-RPC")


def _float_text(value: float) -> str:
    # xapi prints doubles with OCaml's "%.16g": 1.0 is "1", 0.25 is "0.25".
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.16g}"


# --- records, encoded by a plan compiled from their class's field types ----------------------------
def _enc_str(v: Any) -> str:
    return f"<value>{_escape(v)}</value>" if type(v) is str else xml_value(v)


def _enc_int(v: Any) -> str:
    return f"<value>{v}</value>" if type(v) is int else xml_value(v)


def _enc_str_set(v: Any) -> str:
    if type(v) is list and all(type(x) is str for x in v):
        return (
            "<value><array><data>"
            + "".join([f"<value>{_escape(x)}</value>" for x in v])
            + "</data></array></value>"
        )
    return xml_value(v)


def _enc_str_map(v: Any) -> str:
    if type(v) is dict and all(type(x) is str for x in v.values()):
        body = "".join([f"{_member(str(k))}<value>{_escape(x)}</value></member>" for k, x in v.items()])
        return f"<value><struct>{body}</struct></value>"
    return xml_value(v)


_STRINGY = ("string", "ref", "enum")


def _field_encoder(typ: Type) -> Any:
    if typ.kind in _STRINGY:
        return _enc_str
    if typ.kind == "int":
        return _enc_int
    if typ.kind == "set" and typ.item is not None and typ.item.kind in _STRINGY:
        return _enc_str_set
    if typ.kind == "map" and typ.item is not None and typ.item.kind in _STRINGY:
        return _enc_str_map
    return xml_value


def record_encoder(fields: dict[str, Type]) -> Any:
    """A function encoding a record of these fields as an XML-RPC struct, faster than :func:`xml_value`.

    String and int fields are written inline; other fields through an encoder chosen by their type.
    """
    plan = []
    for name, typ in fields.items():
        prefix = _member(name)
        enc = _field_encoder(typ)
        kind = 0 if enc is _enc_str else 1 if enc is _enc_int else 2
        plan.append((name, f"{prefix}<value>", prefix, enc, kind))
    names = set(fields)

    def encode(record: dict[str, Any]) -> str:
        if record.keys() != names:
            return xml_value(record)
        parts = []
        for name, open_value, prefix, enc, kind in plan:
            v = record[name]
            tv = type(v)
            if kind == 0 and tv is str:
                parts.append(f"{open_value}{_escape(v)}</value></member>")
            elif kind == 1 and tv is int:
                parts.append(f"{open_value}{v}</value></member>")
            else:
                parts.append(f"{prefix}{enc(v)}</member>")
        return "<value><struct>" + "".join(parts) + "</struct></value>"

    return encode


def xml_success(value: Any) -> bytes:
    """An XML-RPC response carrying ``{Status: Success, Value: value}``."""
    parts: list[Any] = [
        '<?xml version="1.0"?><methodResponse><params><param><value><struct>'
        "<member><name>Status</name><value>Success</value></member><member><name>Value</name>"
    ]
    _xml(value, parts)
    parts.append("</member></struct></value></param></params></methodResponse>")
    return b"".join(p if type(p) is bytes else p.encode() for p in parts)


def xml_failure(description: list[str]) -> bytes:
    """An XML-RPC response carrying ``{Status: Failure, ErrorDescription: [...]}``."""
    return (
        '<?xml version="1.0"?><methodResponse><params><param><value><struct>'
        "<member><name>Status</name><value>Failure</value></member>"
        f"<member><name>ErrorDescription</name>{xml_value([str(d) for d in description])}</member>"
        "</struct></value></param></params></methodResponse>"
    ).encode()


def xml_decode_call(body: bytes) -> tuple[str, list[Any]]:
    """Decode an XML-RPC ``methodCall`` into the method name and its parameters."""
    try:
        params, method = xmlrpc.client.loads(body, use_builtin_types=False)
    except (ExpatError, xmlrpc.client.ResponseError, ValueError, TypeError, IndexError, KeyError) as e:
        raise WireError(f"malformed XML-RPC request: {e}") from e
    if not method:
        raise WireError("XML-RPC request has no methodName")
    return method, [_from_xmlrpc(p) for p in params]


def _from_xmlrpc(value: Any) -> Any:
    if isinstance(value, xmlrpc.client.DateTime):
        return XDateTime(value.value)
    if isinstance(value, list):
        return [_from_xmlrpc(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_xmlrpc(v) for k, v in value.items()}
    if isinstance(value, xmlrpc.client.Binary):
        return value.data.decode("utf-8", "replace")
    return value


# --- JSON-RPC ------------------------------------------------------------------------------------
_SCALARS = (str, int, float, bool, type(None))


def json_dumps(value: Any) -> bytes:
    """Encode a value as JSON (UTF-8), splicing records cached already encoded."""
    parts: list[bytes] = []
    _json(value, parts)
    return b"".join(parts)


def _json(value: Any, out: list[bytes]) -> None:
    if hasattr(value, "xapi_json_parts"):
        value.xapi_json_parts(out)
    elif type(value) is dict and not all(isinstance(v, _SCALARS) for v in value.values()):
        out.append(b"{")
        for n, (k, v) in enumerate(value.items()):
            out.append(orjson.dumps(str(k)) + b":" if n == 0 else b"," + orjson.dumps(str(k)) + b":")
            _json(v, out)
        out.append(b"}")
    elif (type(value) is list or type(value) is tuple) and not all(isinstance(v, _SCALARS) for v in value):
        out.append(b"[")
        for n, v in enumerate(value):
            if n:
                out.append(b",")
            _json(v, out)
        out.append(b"]")
    else:
        out.append(orjson.dumps(value))


def json_decode_call(body: bytes) -> tuple[str, list[Any], Any, str | None]:
    """Decode a JSON-RPC request: method, params, id, and the ``jsonrpc`` version (None for v1)."""
    try:
        req = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise WireError(f"malformed JSON: {e}") from e
    if not isinstance(req, dict):
        raise WireError("JSON-RPC request is not an object")
    method = req.get("method")
    if not isinstance(method, str) or not method:
        raise WireError("JSON-RPC request has no method")
    params = req.get("params", [])
    if params is None:
        params = []
    elif isinstance(params, dict) and req.get("jsonrpc") == "2.0":
        params = [params]
    elif not isinstance(params, list):
        raise WireError("JSON-RPC params must be an array")
    version = req.get("jsonrpc")
    if version is not None and version != "2.0":
        raise WireError(f"unsupported jsonrpc version {version!r}")
    req_id = req.get("id")
    if req_id is None or isinstance(req_id, bool) or not isinstance(req_id, int | str):
        raise WireError("JSON-RPC request has no id (xapi refuses notifications)")
    if version is None and "params" not in req:
        raise WireError("JSON-RPC v1 request has no params")
    return method, params, req_id, version


def json_success(value: Any, req_id: Any, version: str | None) -> bytes:
    """A JSON-RPC response with a result, in the request's protocol version."""
    rid = orjson.dumps(req_id)
    if version == "2.0":
        return b'{"jsonrpc":"2.0","result":' + json_dumps(value) + b',"id":' + rid + b"}"
    return b'{"result":' + json_dumps(value) + b',"error":null,"id":' + rid + b"}"


def json_failure(description: list[str], req_id: Any, version: str | None) -> bytes:
    """A JSON-RPC failure as xapi writes it: v2 ``{code: 1, message: CODE, data: [params]}``, v1 the array."""
    description = [str(d) for d in description] or ["INTERNAL_ERROR"]
    if version == "2.0":
        error = {"code": 1, "message": description[0], "data": description[1:]}
        return json_dumps({"jsonrpc": "2.0", "error": error, "id": req_id})
    return json_dumps({"result": None, "error": description, "id": req_id})
