import json
import xmlrpc.client

import pytest

from xapisim.values import I32, XDateTime
from xapisim.wire import (
    WireError,
    json_decode_call,
    json_failure,
    json_success,
    xml_decode_call,
    xml_failure,
    xml_success,
    xml_value,
)


def test_wire_xml_encodes_like_xapi():
    assert xml_value("a<b") == "<value>a&lt;b</value>"
    assert xml_value("") == "<value></value>"
    assert xml_value(4294967296) == "<value>4294967296</value>"  # int64 as a bare string
    assert xml_value(I32(3)) == "<value><i4>3</i4></value>"
    assert xml_value(1.0) == "<value><double>1</double></value>"
    assert xml_value(0.25) == "<value><double>0.25</double></value>"
    assert xml_value(True) == "<value><boolean>1</boolean></value>"
    assert xml_value(XDateTime("20120812T09:27:26Z")) == (
        "<value><dateTime.iso8601>20120812T09:27:26Z</dateTime.iso8601></value>"
    )
    assert xml_value([]) == "<value><array><data></data></array></value>"
    assert xml_value({"k": ["v"]}) == (
        "<value><struct><member><name>k</name><value><array><data><value>v</value></data></array></value>"
        "</member></struct></value>"
    )


def test_wire_xml_envelopes_parse_with_a_standard_client():
    ok = xmlrpc.client.loads(xml_success({"a": 1}))[0][0]
    assert ok == {"Status": "Success", "Value": {"a": "1"}}
    fail = xmlrpc.client.loads(xml_failure(["HANDLE_INVALID", "VM", "OpaqueRef:x"]))[0][0]
    assert fail == {"Status": "Failure", "ErrorDescription": ["HANDLE_INVALID", "VM", "OpaqueRef:x"]}
    assert b"\n" not in xml_success(["x"])  # one line, as xapi writes (xen-api's parser needs it)


def test_wire_xml_decodes_calls_with_types():
    body = xmlrpc.client.dumps(("s", 5, True, xmlrpc.client.DateTime("20240101T00:00:00Z")), "VM.foo")
    method, params = xml_decode_call(body.encode())
    assert method == "VM.foo" and params[:3] == ["s", 5, True]
    assert isinstance(params[3], XDateTime)


@pytest.mark.parametrize("body", [b"", b"<methodCall>", b"<methodCall><params/></methodCall>", b"\xff\xfe"])
def test_wire_xml_rejects_malformed_calls(body):
    with pytest.raises(WireError):
        xml_decode_call(body)


def test_wire_json_envelopes_follow_the_version():
    assert json.loads(json_success([1], 7, "2.0")) == {"jsonrpc": "2.0", "result": [1], "id": 7}
    assert json.loads(json_success("x", "a", None)) == {"result": "x", "error": None, "id": "a"}
    assert json.loads(json_failure(["SESSION_INVALID", "r"], 1, "2.0"))["error"] == {
        "code": 1,
        "message": "SESSION_INVALID",
        "data": ["r"],
    }
    assert json.loads(json_failure(["SESSION_INVALID", "r"], 1, None))["error"] == ["SESSION_INVALID", "r"]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"jsonrpc": "2.0", "method": "x", "params": []}',  # no id: a notification
        b'{"jsonrpc": "3.0", "method": "x", "id": 1}',
        b'{"method": "x", "id": 1}',  # v1 without params
        b'{"jsonrpc": "2.0", "method": 5, "id": 1}',
        b'{"jsonrpc": "2.0", "method": "x", "params": "p", "id": 1}',
    ],
)
def test_wire_json_rejects_malformed_requests(body):
    with pytest.raises(WireError):
        json_decode_call(body)


def test_wire_json_v2_accepts_object_params_as_one_param():
    _, params, req_id, version = json_decode_call(b'{"jsonrpc":"2.0","method":"m","params":{"a":1},"id":"z"}')
    assert params == [{"a": 1}] and req_id == "z" and version == "2.0"
