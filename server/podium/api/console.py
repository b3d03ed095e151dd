"""The console proxy: ``/api/consoles/<vm id>``, a WebSocket (``binary`` subprotocol, as noVNC speaks) to the
VM's RFB console on its host, so consoles work wherever the server can reach the pool.

The client proves who it is with its token: the ``authenticationToken`` cookie (Xen Orchestra's name),
a ``token`` cookie, or ``Authorization: Bearer``; never the query string, which ends up in logs. The user
needs ``operate`` on the VM; an invisible VM is 404, a visible one without the right 403, before any
upgrade; a browser page of another origin is refused (the cookie would go along with its request).
Openings and closings go to the audit log. When the VM reboots its console goes away: the
WebSocket closes with code 4000 and the client connects again to the new one.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.parse

from aiohttp import WSCloseCode, WSMsgType, web

from ..auth import InvalidCredentials
from ..xapi import XapiError
from ..xapi.console import ConsoleStream, console_location, open_console
from .context import Context, Services
from .errors import ApiError, NoSuchObject, Unauthorized

log = logging.getLogger(__name__)

CONSOLE_GONE = 4000  # the VM's console closed (shutdown, reboot): connect again when it runs
_TYPES = ("VM", "VM-controller")


def _token(request: web.Request) -> str | None:
    auth = request.headers.get("Authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip() or None
    return request.cookies.get("authenticationToken") or request.cookies.get("token")


async def _context(request: web.Request, services: Services) -> Context:
    token = _token(request)
    if token is None:
        raise web.HTTPUnauthorized(text="sign in first: a token cookie or an Authorization: Bearer header\n")
    try:
        user = await services.users.get(await services.tokens.check(token))
    except InvalidCredentials as e:
        raise web.HTTPUnauthorized(text=f"{e}\n") from None
    if user is None:
        raise web.HTTPUnauthorized(text="this token's user no longer exists\n")
    ctx = Context(services, remote=request.remote or "", user=user)
    await ctx.load_rights()
    return ctx


async def console(request: web.Request) -> web.StreamResponse:
    """Open a VM's console for a user who may operate it."""
    services: Services = request.app["services"]
    ctx = await _context(request, services)
    vm_id = request.match_info["id"]
    try:
        vm = ctx.object(vm_id, _TYPES, "operate")
    except NoSuchObject:
        raise web.HTTPNotFound(text=f"no such VM {vm_id}\n") from None
    except Unauthorized:
        _audit(ctx, vm_id, "refused: no operate right", 0.0)
        raise web.HTTPForbidden(text=f"you may not operate VM {vm_id}\n") from None
    _check_origin(request)
    client = services.servers.client_of(vm["$poolId"])
    begin = time.monotonic()
    try:
        upstream = await open_console(client, await console_location(client, vm["_xapiRef"]))
    except (XapiError, ApiError) as e:
        _audit(ctx, vm_id, f"failed: {e}", 0.0)
        raise web.HTTPBadGateway(text=f"cannot open the console of VM {vm_id}: {e}\n") from None
    # No permessage-deflate: framebuffer updates are latency-bound, and deflate doubles a full screen's time.
    ws = web.WebSocketResponse(protocols=("binary",), heartbeat=30, max_msg_size=4 << 20, compress=False)
    outcome = "closed by the client"
    try:
        await ws.prepare(request)
        _audit(ctx, vm_id, "opened", 0.0)
        outcome = await _pipe(ws, upstream)
    finally:
        await upstream.close()
        _audit(ctx, vm_id, outcome, time.monotonic() - begin)
    return ws


async def _pipe(ws: web.WebSocketResponse, upstream: ConsoleStream) -> str:
    """Copy both ways until one side ends; says which."""

    async def down() -> str:
        while True:
            data = await upstream.reader.read(1 << 16)
            if not data:
                await ws.close(code=CONSOLE_GONE, message=b"the VM's console closed")
                return "closed by the VM's host"
            await ws.send_bytes(data)

    async def up() -> str:
        async for msg in ws:
            if msg.type == WSMsgType.BINARY:
                upstream.writer.write(msg.data)
                await upstream.writer.drain()
            elif msg.type == WSMsgType.TEXT:  # some clients send base64 text frames: not ours
                await ws.close(code=WSCloseCode.UNSUPPORTED_DATA, message=b"binary frames only")
                return "refused text frames"
        return "closed by the client"

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        first = done.pop()
        try:
            return first.result()
        except (ConnectionError, OSError) as e:
            return f"connection lost: {e}"
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not ws.closed:
            await ws.close()


def _check_origin(request: web.Request) -> None:
    """Refuse a browser page of another site (cross-site WebSocket hijacking: the cookie would go along)."""
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not a browser: a script or the CLI, which holds the token itself
    host = urllib.parse.urlsplit(origin).netloc
    if host.lower() != request.host.lower():
        raise web.HTTPForbidden(text=f"a page of {origin} may not open consoles here\n")


def _audit(ctx: Context, vm_id: str, outcome: str, seconds: float) -> None:
    ctx.services.audit.record(
        user=ctx.who,
        remote=ctx.remote,
        method="console",
        params={"id": vm_id},
        outcome=outcome,
        duration_ms=seconds * 1000,
    )
