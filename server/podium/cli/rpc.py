"""Podium's API over a WebSocket (the JSON-RPC 2.0 that xo-lib speaks), failing in words a person can use.

Every network failure becomes a :class:`ConnectError` that says which address, what happened and what to
do: an untrusted certificate names its SHA-256 fingerprint and ``--au``; a pinned certificate that changed
names both fingerprints; a refused connection names the address and port.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import urllib.parse
from typing import Any

import aiohttp

from .. import jsonrpc, net
from .errors import ConnectError, RpcError, UsageError

CONNECT_TIMEOUT = 30.0


def check_url(url: str) -> str:
    """The server URL as given, if it is one (``http://`` or ``https://`` and a host)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = url.rpartition("@")[2]  # never echo a token given in the URL
        hint = f" (did you mean https://{shown}?)" if "://" not in url else ""
        raise UsageError(
            f"{shown!r} is not a server URL: give http://HOST[:PORT] or https://HOST[:PORT]{hint}"
        )
    return url


def api_url(server: str) -> str:
    """The WebSocket address of a server's API, found as xo-lib finds it (``./api/`` from the URL)."""
    url = urllib.parse.urljoin(server, "./api/")
    return "ws" + url[4:] if url.startswith("http") else url


async def peer_fingerprint(url: str) -> str | None:
    """The fingerprint of the certificate a server presents, read without trusting it (None if unreachable)."""
    try:
        digest = await net.peer_fingerprint(net.Endpoint.parse(url), CONNECT_TIMEOUT)
    except (ValueError, net.Unreachable):
        return None
    return net.format_fingerprint(digest)


class Tls:
    """How to trust a server's certificate: verify it (default), pin a fingerprint, or accept any."""

    def __init__(self, allow_any: bool = False, fingerprint: str | None = None) -> None:
        self.allow_any = allow_any
        self.fingerprint = fingerprint

    def for_aiohttp(self) -> bool | aiohttp.Fingerprint:
        """The ``ssl`` argument of aiohttp's requests."""
        if self.allow_any:
            return False
        if self.fingerprint:
            try:
                return aiohttp.Fingerprint(bytes.fromhex(self.fingerprint.replace(":", "")))
            except ValueError:
                raise UsageError(
                    f"the remembered certificate fingerprint {self.fingerprint!r} is not a SHA-256:"
                    " register again"
                ) from None
        return True


async def connect_error(e: BaseException, url: str) -> ConnectError:
    """What a failure to reach ``url`` means, as a person reads it."""
    where = urllib.parse.urlsplit(url)
    host = f"{where.hostname}:{where.port or (443 if where.scheme in ('https', 'wss') else 80)}"
    if isinstance(e, aiohttp.ClientConnectorCertificateError):
        reason = getattr(e.certificate_error, "verify_message", None) or str(e.certificate_error)
        seen = await peer_fingerprint(url)
        lines = [f"the certificate of {url} is not trusted: {reason}"]
        if seen:
            lines.append(f"  its SHA-256 fingerprint is {seen}")
        lines.append("  if that is your server's certificate, accept it with --au (--allowUnauthorized),")
        lines.append(f"  e.g. podium register --au {url} USER")
        return ConnectError("\n".join(lines))
    if isinstance(e, aiohttp.ServerFingerprintMismatch):
        return ConnectError(
            f"the certificate of {url} changed since you registered\n"
            f"  accepted then: {net.format_fingerprint(e.expected)}\n"
            f"  presented now: {net.format_fingerprint(e.got)}\n"
            "  if the server's certificate was replaced on purpose, check the new fingerprint and register"
            " again with --au; otherwise someone may be intercepting the connection"
        )
    if isinstance(e, aiohttp.ClientSSLError):
        return ConnectError(f"TLS with {host} failed: {e} (does it speak https?)")
    if isinstance(e, aiohttp.ClientConnectorError):
        reason = e.os_error.strerror or str(e.os_error)
        return ConnectError(f"cannot reach {host}: {reason}")
    if isinstance(e, aiohttp.WSServerHandshakeError):
        return ConnectError(
            f"{url} answered HTTP {e.status} ({e.message}) where the API should be: is it a Podium server?"
        )
    if isinstance(e, TimeoutError):
        return ConnectError(f"{host} did not answer within {CONNECT_TIMEOUT:.0f} s")
    if isinstance(e, aiohttp.ClientResponseError):
        return ConnectError(f"{url} answered HTTP {e.status}: {e.message}")
    return ConnectError(f"the connection to {host} failed: {e or type(e).__name__}")


def rpc_error(error: object) -> RpcError:
    """A JSON-RPC error object as an exception, whatever odd shape it came in."""
    error = error if isinstance(error, dict) else {"message": str(error)}
    code = error.get("code")
    return RpcError(
        code if isinstance(code, int) else -32603, str(error.get("message") or "error"), error.get("data")
    )


class ApiConnection:
    """One WebSocket to a server's API: calls, and the notifications it pushes (``notifications``)."""

    def __init__(self, server: str, tls: Tls, notifications: bool = False) -> None:
        self.server = server
        self.tls = tls
        self.keep_notifications = notifications  # only a watcher reads them: others would let them pile up
        self.url = api_url(server)
        self.http: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.notifications: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None
        self._closed_because = ""

    async def open(self) -> ApiConnection:
        """Connect, or raise the :class:`ConnectError` that says why not."""
        ssl = self.tls.for_aiohttp()
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT, sock_read=None)
        self.http = aiohttp.ClientSession(timeout=timeout)
        try:
            self.ws = await asyncio.wait_for(
                self.http.ws_connect(self.url, ssl=ssl, max_msg_size=0, heartbeat=30), CONNECT_TIMEOUT
            )
        except (aiohttp.ClientError, TimeoutError, OSError) as e:
            await self.http.close()
            raise await connect_error(e, self.server) from e
        except BaseException:
            await self.http.close()
            raise
        self._reader = asyncio.create_task(self._read())
        return self

    async def close(self) -> None:
        """Close the WebSocket and everything under it."""
        if self._reader is not None:
            self._reader.cancel()
        if self.ws is not None:
            await self.ws.close()
        if self.http is not None:
            await self.http.close()

    async def __aenter__(self) -> ApiConnection:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                try:
                    data = json.loads(msg.data)
                except ValueError:
                    continue
                if not isinstance(data, dict):
                    continue
                call_id = data.get("id")
                future = self._pending.pop(call_id, None) if isinstance(call_id, int) else None
                if future is not None and not future.done():
                    future.set_result(data)
                elif "method" in data and "id" not in data and self.keep_notifications:
                    self.notifications.put_nowait(data)
            code = self.ws.close_code
            self._closed_because = f"the server closed the connection (code {code})"
        except (aiohttp.ClientError, OSError) as e:
            self._closed_because = f"the connection broke: {e}"
        finally:
            for future in self._pending.values():
                if not future.done():
                    future.set_exception(ConnectError(f"{self._closed_because or 'closed'} ({self.server})"))
            self._pending.clear()
            self.notifications.put_nowait(None)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Call a method; its result, or the :class:`RpcError` it answered."""
        if self.ws is None or self.ws.closed or (self._reader is not None and self._reader.done()):
            raise ConnectError(f"{self._closed_because or 'not connected'} ({self.server})")
        call_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[call_id] = future
        message = jsonrpc.request(call_id, method, params or {})
        try:
            await self.ws.send_str(json.dumps(message))
        except (aiohttp.ClientError, ConnectionError) as e:
            self._pending.pop(call_id, None)
            raise ConnectError(f"the connection to {self.server} broke: {e}") from e
        reply = await future
        if "error" in reply:
            raise rpc_error(reply["error"])
        return reply.get("result")

    def http_url(self, path: str) -> str:
        """An address on the server a method answered (``$getFrom``, ``$sendTo``), resolved as xo-cli does."""
        return urllib.parse.urljoin(self.server, path)

    def ssl(self) -> bool | aiohttp.Fingerprint:
        """The ``ssl`` argument for HTTP requests to the same server."""
        return self.tls.for_aiohttp()
