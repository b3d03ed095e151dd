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

from .values import I32, XDateTime

_XML_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})


class WireError(ValueError):
    """A request body that cannot be decoded."""


# --- XML-RPC -------------------------------------------------------------------------------------
def xml_value(value: Any) -> str:
    """Encode one value as an XML-RPC ``<value>`` element, as xapi does."""
    parts: list[str] = []
    _xml(value, parts)
    return "".join(parts)


def _xml(value: Any, out: list[str]) -> None:
    t = type(value)
    if t is str:
        out.append("<value>")
        out.append(value.translate(_XML_ESCAPES) if ("&" in value or "<" in value or ">" in value) else value)
        out.append("</value>")
    elif t is dict:
        out.append("<value><struct>")
        for k, v in value.items():
            out.append("<member><name>")
            out.append(str(k).translate(_XML_ESCAPES))
            out.append("</name>")
            _xml(v, out)
            out.append("</member>")
        out.append("</struct></value>")
    elif t is list or t is tuple:
        out.append("<value><array><data>")
        for v in value:
            _xml(v, out)
        out.append("</data></array></value>")
    elif t is bool:
        out.append("<value><boolean>1</boolean></value>" if value else "<value><boolean>0</boolean></value>")
    elif t is int:
        out.append(f"<value>{value}</value>")
    elif t is I32:
        out.append(f"<value><i4>{int(value)}</i4></value>")
    elif t is float:
        out.append(f"<value><double>{_float_text(value)}</double></value>")
    elif t is XDateTime:
        out.append(f"<value><dateTime.iso8601>{value}</dateTime.iso8601></value>")
    elif hasattr(value, "xapi_xml"):
        out.append(value.xapi_xml())
    elif value is None:
        out.append("<value></value>")
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


def xml_success(value: Any) -> bytes:
    """An XML-RPC response carrying ``{Status: Success, Value: value}``."""
    return (
        '<?xml version="1.0"?><methodResponse><params><param><value><struct>'
        "<member><name>Status</name><value>Success</value></member>"
        f"<member><name>Value</name>{xml_value(value)}</member>"
        "</struct></value></param></params></methodResponse>"
    ).encode()


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


def json_dumps(value: Any) -> str:
    """Encode a value as JSON, splicing pre-encoded parts (lazy records)."""
    if hasattr(value, "xapi_json"):
        return str(value.xapi_json())
    if type(value) is dict:
        if all(isinstance(v, _SCALARS) for v in value.values()):
            return _dumps(value)
        return "{" + ",".join(f"{_dumps(str(k))}:{json_dumps(v)}" for k, v in value.items()) + "}"
    if type(value) is list or type(value) is tuple:
        if all(isinstance(v, _SCALARS) for v in value):
            return _dumps(value)
        return "[" + ",".join(json_dumps(v) for v in value) + "]"
    return _dumps(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


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
    rid = json.dumps(req_id)
    if version == "2.0":
        return f'{{"jsonrpc":"2.0","result":{json_dumps(value)},"id":{rid}}}'.encode()
    return f'{{"result":{json_dumps(value)},"error":null,"id":{rid}}}'.encode()


def json_failure(description: list[str], req_id: Any, version: str | None) -> bytes:
    """A JSON-RPC failure as xapi writes it: v2 ``{code: 1, message: CODE, data: [params]}``, v1 the array."""
    description = [str(d) for d in description] or ["INTERNAL_ERROR"]
    if version == "2.0":
        error = {"code": 1, "message": description[0], "data": description[1:]}
        return json_dumps({"jsonrpc": "2.0", "error": error, "id": req_id}).encode()
    return json_dumps({"result": None, "error": description, "id": req_id}).encode()
