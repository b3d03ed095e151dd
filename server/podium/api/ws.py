"""JSON-RPC 2.0 over WebSocket at ``/api/``, as xo-server speaks it (so xo-lib works unchanged).

Reader and writer are split: the reader runs each call as its own task; everything sent (results and
``all`` notifications) goes through a bounded queue that the writer drains. A client that cannot keep up
fills its queue and is disconnected; the server is never slowed by it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from .. import jsonrpc
from ..auth.acls import ancestors, granted_by
from ..cache import Batch
from .context import Context, Services
from .dispatch import call
from .errors import ApiError

log = logging.getLogger(__name__)

QUEUE_SIZE = 1024  # messages waiting for one client before it is dropped


def _notification(kind: str, items: dict[str, Any]) -> dict[str, Any]:
    if kind == "exit":
        items = dict.fromkeys(items, 0)  # xo-server sends 0 for each object that left
    return jsonrpc.notification("all", {"type": kind, "items": items})


class ClientConnection:
    """One client's WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self.unsubscribe: Any = None
        self.dropped = False
        self.visible: set[str] = set()  # ids of the objects this client has been shown

    def send(self, message: dict[str, Any] | bytes) -> None:
        """Queue a message; a full queue means a client too slow to keep: drop it."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(message if isinstance(message, bytes) else orjson.dumps(message))
        except asyncio.QueueFull:
            log.warning("dropping %s: %d messages unread", self.ctx.remote, QUEUE_SIZE)
            self.dropped = True
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)

    def notify_batch(self, batch: Batch) -> None:
        """Forward a change of the object cache, filtered by what the user may see.

        An object that changed so that the user may no longer see it (moved to a host they have no right
        on) is sent as an exit, so that no client keeps a stale copy of it.
        """
        ctx = self.ctx
        if ctx.is_admin:  # sees everything: the shared encoding, no per-object check
            self._send_shared(batch, batch.enter, batch.exit)
            return
        lookup = ctx.services.objects.get
        perms = ctx.perms
        chains = batch.ancestors  # computed once per batch, shared by every client

        def visible(i: str, o: dict[str, Any]) -> bool:
            chain = chains.get(i)
            if chain is None:
                chain = chains[i] = ancestors(o, lookup)
            return granted_by(perms, chain, "view")

        enter: dict[str, Any] = {}
        exit_ = {i: o for i, o in batch.exit.items() if visible(i, o)}
        for i, o in batch.enter.items():
            if visible(i, o):
                enter[i] = o
                self.visible.add(i)
            elif i in self.visible:
                exit_[i] = o
        for i in exit_:
            self.visible.discard(i)
        if len(enter) == len(batch.enter) and len(exit_) == len(batch.exit):
            self._send_shared(batch, enter, exit_)
        else:
            self._send_items(enter, exit_)

    def _send_shared(self, batch: Batch, enter: dict[str, Any], exit_: dict[str, Any]) -> None:
        # This client sees the whole batch: the encoding made once for all such clients serves.
        for kind, items in (("enter", enter), ("exit", exit_)):
            if items:
                if kind not in batch.encoded:
                    batch.encoded[kind] = orjson.dumps(_notification(kind, items))
                self.send(batch.encoded[kind])

    async def refresh(self) -> None:
        """The user's rights changed: objects they may now see enter, those they may not exit."""
        ctx = self.ctx
        if ctx.user is None:
            return
        fresh = await ctx.services.users.get(ctx.user.id)
        if fresh is None:
            ctx.user = None
            self.signed_out(ctx)
            return
        was_admin = ctx.is_admin
        ctx.user = fresh
        await ctx.load_rights()
        objects = ctx.services.objects.objects
        if ctx.is_admin:
            if not was_admin:
                self._send_items({i: o for i, o in objects.items() if i not in self.visible}, {})
            self.visible = set()
            return
        before = set(objects) if was_admin else self.visible  # an admin was shown everything
        now = {i for i, o in objects.items() if ctx.can_see(o)}
        enter = {i: objects[i] for i in now - before}
        exit_ = {i: objects.get(i, {}) for i in before - now}
        self.visible = now
        self._send_items(enter, exit_)

    def _send_items(self, enter: dict[str, Any], exit_: dict[str, Any]) -> None:
        if enter:
            self.send(_notification("enter", enter))
        if exit_:
            self.send(_notification("exit", exit_))

    def signed_in(self, ctx: Context) -> None:
        """Start the ``all`` notifications once a user is known."""
        objects = ctx.services.objects.objects
        self.visible = set() if ctx.is_admin else {i for i, o in objects.items() if ctx.can_see(o)}
        if self.unsubscribe is None:
            self.unsubscribe = ctx.services.objects.subscribe(self.notify_batch)

    def signed_out(self, ctx: Context) -> None:
        """Stop them."""
        if self.unsubscribe is not None:
            self.unsubscribe()
            self.unsubscribe = None

    async def writer(self) -> None:
        while True:
            data = await self.queue.get()
            if data is None:
                await self.ws.close(code=1008, message=b"too slow: messages were not read")
                return
            await self.ws.send_frame(data, WSMsgType.TEXT)  # already UTF-8 JSON: no decode and re-encode

    async def handle(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.send(jsonrpc.error(None, -32700, "invalid JSON"))
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            self.send(jsonrpc.error(None, -32600, "invalid JSON-RPC request"))
            return
        req_id = msg.get("id")
        try:
            result = await call(self.ctx, msg["method"], msg.get("params"))
        except ApiError as e:
            if req_id is not None:
                self.send(jsonrpc.error(req_id, e.code, e.message, e.data))
            return
        if req_id is not None:
            self.send(jsonrpc.result(req_id, result))


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """The ``/api/`` endpoint."""
    services: Services = request.app["services"]
    # No permessage-deflate (as xo-server's ws): compressing xo.getAllObjects's tens of megabytes and every
    # notification for each browser costs the server more CPU than the bytes it saves on a LAN.
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 << 20, compress=False)
    await ws.prepare(request)
    ctx = Context(services, remote=request.remote or "")
    conn = ClientConnection(ws, ctx)
    ctx.on_sign_in.append(conn.signed_in)
    ctx.on_sign_out.append(conn.signed_out)
    writer = asyncio.create_task(conn.writer())
    calls: set[asyncio.Task[None]] = set()
    services.connections.add(conn)
    try:
        async for msg in ws:
            if msg.type in (WSMsgType.TEXT, WSMsgType.BINARY):
                task = asyncio.create_task(conn.handle(msg.data))
                calls.add(task)
                task.add_done_callback(calls.discard)
            elif msg.type == WSMsgType.ERROR:
                break
            if conn.dropped:
                break
    finally:
        services.connections.discard(conn)
        conn.signed_out(ctx)
        for task in calls:
            task.cancel()
        writer.cancel()
    return ws
