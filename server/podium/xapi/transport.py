"""One host's XAPI endpoint over HTTP(S): JSON-RPC at ``/jsonrpc``, or XML-RPC at ``/`` for hosts that lack it.

TLS is verified by default. Per server, either ``allow_unauthorized`` (no verification) or a pinned
SHA-256 fingerprint of the host's certificate (checked instead of the CA chain). Every call has a
timeout, and a semaphore bounds the calls in flight.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import itertools
import logging
import ssl
import xmlrpc.client
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from xml.parsers.expat import ExpatError

import aiohttp
import orjson

from ..gcpause import bulk
from .errors import CallTimeout, ProtocolError, TlsError, Unreachable, XapiFailure

log = logging.getLogger(__name__)

_ids = itertools.count(1)


@dataclass(frozen=True)
class Endpoint:
    """Where a host answers: scheme, address and port (an IPv6 address without brackets)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``10.0.0.1``, ``10.0.0.1:8080``, ``[fe80::1]:443``, ``https://host`` or ``http://127.0.0.5:8080``."""
        text = text.strip()
        if not text:
            raise ValueError("empty host address")
        if "://" not in text:
            text = "https://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {parts.scheme!r}: use http or https")
        if not parts.hostname:
            raise ValueError(f"no host name in {text!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as e:
            raise ValueError(f"bad port in {text!r}") from e
        return cls(parts.scheme, parts.hostname, port)

    def with_host(self, host: str) -> Endpoint:
        """The same scheme and port on another address (to follow HOST_IS_SLAVE)."""
        return Endpoint(self.scheme, host.strip("[]"), self.port)

    @property
    def url(self) -> str:
        """The base URL, with an IPv6 address in brackets."""
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def ssl_option(
    allow_unauthorized: bool, fingerprint: str | None
) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
    """aiohttp's ``ssl`` argument for a server's certificate policy."""
    if fingerprint:
        digest = bytes.fromhex(fingerprint.replace(":", "").strip())
        if len(digest) != 32:
            raise ValueError("a certificate fingerprint is a SHA-256 digest: 64 hexadecimal digits")
        return aiohttp.Fingerprint(digest)
    if allow_unauthorized:
        return False
    return ssl.create_default_context()


async def peer_fingerprint(endpoint: Endpoint, timeout: float = 10.0) -> str:
    """The SHA-256 fingerprint of the certificate a host presents (fetched without verifying it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port, ssl=ctx), timeout
        )
    except (OSError, TimeoutError) as e:
        raise Unreachable(f"cannot reach {endpoint}: {e}") from e
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        # Closed before returning, TLS's close_notify answered or not: a close left pending would outlive
        # the caller (a wizard's request, a test's event loop) with its socket still open.
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (OSError, TimeoutError):
            writer.transport.abort()
    return hashlib.sha256(der).hexdigest().upper()


def _format_fingerprint(hexdigest: str) -> str:
    return ":".join(hexdigest[i : i + 2] for i in range(0, len(hexdigest), 2))


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
            got = _format_fingerprint(e.got.hex().upper())
            raise TlsError(
                f"{self.endpoint} presented a certificate with SHA-256 fingerprint {got}, "
                f"not the pinned {_format_fingerprint(e.expected.hex().upper())}: check the host or update the pin",
                got,
            ) from e
        except aiohttp.ClientConnectorCertificateError as e:
            fp = ""
            try:
                fp = _format_fingerprint(await peer_fingerprint(self.endpoint))
            except Unreachable:
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
        req = {"jsonrpc": "2.0", "method": method, "params": params, "id": next(_ids)}
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
