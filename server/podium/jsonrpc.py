"""JSON-RPC 2.0 messages: a call, its answer, its error, a notification.

Every JSON-RPC message Podium writes is made here: the server's answers and notifications as xo-server
writes them (on the WebSocket, and as the answer to a ``$sendTo`` upload), and the calls its clients make
(the CLI's to the server, the XAPI client's to a pool).
"""

from __future__ import annotations

from typing import Any


def request(id_: Any, method: str, params: Any) -> dict[str, Any]:
    """A call that expects an answer under ``id_``."""
    return {"jsonrpc": "2.0", "id": id_, "method": method, "params": params}


def result(id_: Any, value: Any) -> dict[str, Any]:
    """The answer to the call ``id_``."""
    return {"jsonrpc": "2.0", "id": id_, "result": value}


def error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    """The error answering the call ``id_`` (``None`` for a message that could not be read as a call);
    ``data`` only when there is some."""
    err: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        err["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": err}


def notification(method: str, params: Any) -> dict[str, Any]:
    """A message that answers no call (``all``: objects that entered or left the user's view)."""
    return {"jsonrpc": "2.0", "method": method, "params": params}
