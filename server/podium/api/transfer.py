"""One-shot HTTP endpoints behind ``{$getFrom: path}`` and ``{$sendTo: path}`` results, as Xen Orchestra has.

A method that moves a file (vm.export, vm.import, disk.exportContent …) checks its rights when called,
registers a handler here and answers the path ``/api/transfers/<token>[/<file name>]``. The token is 256
random bits, good for one request within ten minutes, and bound to the user who made the call: it is
the credential, so a client needs no cookie to download or upload (xo-cli's way). Every opening and
outcome is logged without the token.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .. import jsonrpc
from ..errors import PodiumError
from ..xapi import XapiError, XapiFailure
from ..xapi.stream import Download, pieces
from .errors import from_xapi

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
TTL = 600.0


@dataclass
class _Entry:
    handler: Handler
    method: str  # GET for $getFrom, PUT or POST for $sendTo
    what: str  # for the log: the method and object
    user: str
    expires: float


class Transfers:
    """The registry of pending transfers."""

    def __init__(self, ttl: float = TTL) -> None:
        self.ttl = ttl
        self._pending: dict[str, _Entry] = {}

    def register(self, handler: Handler, *, upload: bool, what: str, user: str, name: str = "") -> str:
        """Register a one-shot handler; returns its path."""
        self._sweep()
        token = secrets.token_urlsafe(32)
        self._pending[token] = _Entry(
            handler, "PUT" if upload else "GET", what, user, time.monotonic() + self.ttl
        )
        suffix = "/" + urllib.parse.quote(name, safe="") if name else ""
        return f"/api/transfers/{token}{suffix}"

    def _sweep(self) -> None:
        now = time.monotonic()
        for token in [t for t, e in self._pending.items() if e.expires < now]:
            del self._pending[token]

    async def serve(self, request: web.Request) -> web.StreamResponse:
        """Run the handler a token names, once."""
        self._sweep()
        token = request.match_info["token"]
        entry = self._pending.get(token)
        if entry is None:
            raise web.HTTPNotFound(text="no such transfer: it was used already, expired, or never existed\n")
        # not HEAD: it would spend the one use, and run the export, for headers only
        allowed = ("GET",) if entry.method == "GET" else ("PUT", "POST")
        if request.method not in allowed:
            raise web.HTTPMethodNotAllowed(request.method, list(allowed))
        del self._pending[token]
        if entry.method == "GET":
            log.info("transfer %s by %s from %s started", entry.what, entry.user, request.remote)
        else:
            size = (
                f"{request.content_length:,} bytes"
                if request.content_length is not None
                else "length unknown"
            )
            log.info("transfer %s by %s from %s started (%s)", entry.what, entry.user, request.remote, size)
        started = time.monotonic()
        try:
            response = await entry.handler(request)
        except BaseException as e:
            log.info(
                "transfer %s by %s ended in %.1f s: %s",
                entry.what,
                entry.user,
                time.monotonic() - started,
                type(e).__name__,
            )
            raise
        log.info("transfer %s by %s done in %.1f s", entry.what, entry.user, time.monotonic() - started)
        return response


def error_response(e: Exception) -> web.Response:
    """A transfer's failure as the client reads it: JSON-RPC's error object, with an HTTP status."""
    if isinstance(e, XapiFailure):
        err: PodiumError = from_xapi(e)
    elif isinstance(e, PodiumError):
        err = e
    else:
        err = PodiumError(f"the transfer failed: {e}")
    status = err.status if err.status >= 400 else 500
    return web.json_response(jsonrpc.error(0, err.code, err.message, err.data), status=status)


def upload_answer(value: Any) -> web.Response:
    """What an upload to a ``$sendTo`` path answers when it succeeded: the method's result."""
    return web.json_response(jsonrpc.result(0, value))


def attachment(name: str) -> str:
    """A Content-Disposition for a file name any browser and curl take (RFC 6266, UTF-8 too)."""
    ascii_name = "".join(c if c.isascii() and c.isprintable() and c not in '"\\/' else "_" for c in name)
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{urllib.parse.quote(name, safe='')}"


async def relay_download(request: web.Request, download: Download, name: str) -> web.StreamResponse:
    """Stream a pool's download to the client as it comes; a failure midway cuts the client's stream.

    A client that goes away cancels the pool's task. The pool's task is destroyed at the end.
    """
    task = download.task
    response = web.StreamResponse(
        headers={"Content-Type": "application/octet-stream", "Content-Disposition": attachment(name)}
    )
    if download.length is not None:
        response.content_length = download.length
    try:
        await response.prepare(request)
        async for data in download.chunks():
            await response.write(data)
        await task.result()
        await response.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        log.info("the client of download %s went away; cancelling the pool's task", name)
        await task.cancel()
        raise
    except XapiError as e:
        # Headers are gone: the only way left to say "failed" is to end the stream without its end.
        log.warning("download %s failed midway: %s", name, e)
        if request.transport is not None:
            request.transport.abort()
    finally:
        await download.close()
        await task.destroy()
    return response


def request_body(request: web.Request) -> AsyncIterator[bytes]:
    """The client's upload, as it arrives."""
    return pieces(request.content)
