"""One host's XAPI endpoint over HTTP(S): JSON-RPC at ``/jsonrpc``, or XML-RPC at ``/`` for hosts that lack it.

TLS is verified by default. Per server, either ``allow_unauthorized`` (no verification) or a pinned
SHA-256 fingerprint of the host's certificate (checked instead of the CA chain). Every call has a
timeout, and a semaphore bounds the calls in flight.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import ssl
import xmlrpc.client
from typing import Any
from xml.parsers.expat import ExpatError

import aiohttp
import orjson

from .. import jsonrpc, net
from ..gcpause import bulk
from ..net import Endpoint, format_fingerprint, peer_fingerprint
from .errors import CallTimeout, ProtocolError, TlsError, Unreachable, XapiFailure

log = logging.getLogger(__name__)

_ids = itertools.count(1)


class Transport:
    """Calls to one host, JSON-RPC first and XML-RPC when the host does not speak JSON-RPC."""

    def __init__(
        self,
        http: aiohttp.ClientSession,
        endpoint: Endpoint,
        ssl_opt: ssl.SSLContext | aiohttp.Fingerprint | bool,
        limit: asyncio.Semaphore,
        timeout: float = 60.0,
    ) -> None:
        self.http = http
        self.endpoint = endpoint
        self.ssl = ssl_opt if endpoint.scheme == "https" else None
        self.limit = limit
        self.timeout = timeout
        self.protocol: str | None = None  # "json" or "xml", once known

    async def call(self, method: str, params: list[Any], timeout: float | None = None) -> Any:
        """Call a method; returns its value or raises :class:`XapiFailure` and the transport errors."""
        timeout = self.timeout if timeout is None else timeout
        async with self.limit:
            if self.protocol != "xml":
                try:
                    value = await self._json(method, params, timeout)
                except _NoJsonRpc:
                    log.info("%s does not speak JSON-RPC; using XML-RPC", self.endpoint)
                    self.protocol = "xml"
                else:
                    self.protocol = "json"
                    return value
            return await self._xml(method, params, timeout)

    async def _post(self, path: str, body: bytes, ctype: str, timeout: float) -> tuple[int, str, bytes]:
        url = self.endpoint.url + path
        try:
            async with self.http.post(
                url,
                data=body,
                headers={"Content-Type": ctype, "Accept": ctype},
                ssl=self.ssl if self.ssl is not None else True,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                return resp.status, resp.headers.get("Content-Type", ""), await resp.read()
        except aiohttp.ServerFingerprintMismatch as e:
            got = format_fingerprint(e.got)
            raise TlsError(
                f"{self.endpoint} presented a certificate with SHA-256 fingerprint {got}, "
                f"not the pinned {format_fingerprint(e.expected)}: check the host or update the pin",
                got,
            ) from e
        except aiohttp.ClientConnectorCertificateError as e:
            fp = ""
            try:
                fp = format_fingerprint(await peer_fingerprint(self.endpoint))
            except net.Unreachable:
                pass
            raise TlsError(
                f"{self.endpoint}'s certificate is not trusted ({e.certificate_error}); its SHA-256 fingerprint is "
                f"{fp or 'unknown'}: pin that fingerprint or allow unauthorized certificates",
                fp,
            ) from e
        except (aiohttp.ClientSSLError, ssl.SSLError) as e:
            raise TlsError(f"TLS with {self.endpoint} failed: {e}") from e
        except TimeoutError as e:
            raise CallTimeout(f"{self.endpoint} did not answer within {timeout:.0f} s") from e
        except (aiohttp.ClientConnectionError, OSError) as e:
            raise Unreachable(f"cannot reach {self.endpoint}: {e}") from e
        except aiohttp.ClientError as e:  # a reply cut short or malformed HTTP
            raise ProtocolError(f"{self.endpoint} sent a broken HTTP reply: {e}") from e

    async def _json(self, method: str, params: list[Any], timeout: float) -> Any:
        req = jsonrpc.request(next(_ids), method, params)
        status, ctype, body = await self._post("/jsonrpc", orjson.dumps(req), "application/json", timeout)
        if not ctype.startswith("application/json"):
            if self.protocol is None:
                raise _NoJsonRpc
            raise ProtocolError(
                f"{self.endpoint} answered HTTP {status} ({ctype or 'no content type'}) to {method}"
            )
        try:
            if len(body) > 1 << 20:
                with bulk():  # a full read: millions of objects, no collector rescans while parsing
                    reply = orjson.loads(body)
            else:
                reply = orjson.loads(body)
        except orjson.JSONDecodeError as e:
            raise ProtocolError(f"{self.endpoint} sent malformed JSON for {method}: {e}") from e
        error = reply.get("error") if isinstance(reply, dict) else None
        if error:
            if isinstance(error, dict):
                data = error.get("data") or []
                raise _failure(str(error.get("message", "")), data if isinstance(data, list) else [], method)
            if isinstance(error, list) and error:
                raise _failure(str(error[0]), error[1:], method)
            raise ProtocolError(f"{self.endpoint} sent an unreadable error for {method}: {error!r}")
        if not isinstance(reply, dict) or "result" not in reply:
            raise ProtocolError(f"{self.endpoint} sent no result for {method}")
        return reply["result"]

    async def _xml(self, method: str, params: list[Any], timeout: float) -> Any:
        body = xmlrpc.client.dumps(tuple(_xml_param(p) for p in params), method, allow_none=False).encode()
        status, _ctype, data = await self._post("/", body, "text/xml", timeout)
        if status != 200:
            raise ProtocolError(f"{self.endpoint} answered HTTP {status} to {method}")
        try:
            (reply,), _ = xmlrpc.client.loads(data, use_builtin_types=False)
        except (ExpatError, ValueError, xmlrpc.client.Error) as e:
            raise ProtocolError(f"{self.endpoint} sent malformed XML-RPC for {method}: {e}") from e
        reply = _from_xml(reply)
        if not isinstance(reply, dict) or "Status" not in reply:
            raise ProtocolError(f"{self.endpoint} sent an answer without Status for {method}")
        if reply["Status"] == "Success":
            return reply.get("Value")
        desc = reply.get("ErrorDescription") or ["UNKNOWN_ERROR"]
        raise _failure(str(desc[0]), desc[1:], method)


class _NoJsonRpc(Exception):
    pass


def _failure(code: str, params: list[Any], method: str) -> XapiFailure:
    from .errors import AuthenticationFailed

    cls = AuthenticationFailed if code == "SESSION_AUTHENTICATION_FAILED" else XapiFailure
    return cls(code, [str(p) for p in params], method)


def _xml_param(value: Any) -> Any:
    # XAPI's int64 travels as a string in XML-RPC; Python's marshaller refuses ints past 32 bits.
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return [_xml_param(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _xml_param(v) for k, v in value.items()}
    return value


def _from_xml(value: Any) -> Any:
    if isinstance(value, xmlrpc.client.DateTime):
        return value.value
    if isinstance(value, list):
        return [_from_xml(v) for v in value]
    if isinstance(value, dict):
        return {k: _from_xml(v) for k, v in value.items()}
    return value
