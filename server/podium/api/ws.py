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

from ..cache import Batch
from .context import Context, Services
from .dispatch import call
from .errors import ApiError

log = logging.getLogger(__name__)

QUEUE_SIZE = 1024  # messages waiting for one client before it is dropped


class Connection:
    """One client's WebSocket."""

    def __init__(self, ws: web.WebSocketResponse, ctx: Context) -> None:
        self.ws = ws
        self.ctx = ctx
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(QUEUE_SIZE)
        self.unsubscribe: Any = None
        self.dropped = False
        self.visible: set[str] = set()  # ids of the objects this client has been shown

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message; a full queue means a client too slow to keep: drop it."""
        if self.dropped:
            return
        try:
            self.queue.put_nowait(orjson.dumps(message))
        except asyncio.QueueFull:
            log.warning("dropping %s: %d messages unread", self.ctx.remote, QUEUE_SIZE)
            self.dropped = True
            self.queue = asyncio.Queue(1)
            self.queue.put_nowait(None)

    def notify_batch(self, batch: Batch) -> None:
        """Forward a change of the object store, filtered by what the user may see.

        An object that changed so that the user may no longer see it (moved to a host they have no right
        on) is sent as an exit, so that no client keeps a stale copy of it.
        """
        ctx = self.ctx
        enter: dict[str, Any] = {}
        exit_ = {i: o for i, o in batch.exit.items() if ctx.can_see(o)}
        for i, o in batch.enter.items():
            if ctx.can_see(o):
                enter[i] = o
                self.visible.add(i)
            elif i in self.visible:
                exit_[i] = o
        for i in exit_:
            self.visible.discard(i)
        self._send_items(enter, exit_)

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
        ctx.user = fresh
        await ctx.load_rights()
        objects = ctx.services.objects.objects
        now = {i for i, o in objects.items() if ctx.can_see(o)}
        enter = {i: objects[i] for i in now - self.visible}
        exit_ = {i: objects.get(i, {}) for i in self.visible - now}
        self.visible = now
        self._send_items(enter, exit_)

    def _send_items(self, enter: dict[str, Any], exit_: dict[str, Any]) -> None:
        if enter:
            self.send({"jsonrpc": "2.0", "method": "all", "params": {"type": "enter", "items": enter}})
        if exit_:
            items = dict.fromkeys(exit_, 0)  # xo-server sends 0 for each object that left
            self.send({"jsonrpc": "2.0", "method": "all", "params": {"type": "exit", "items": items}})

    def signed_in(self, ctx: Context) -> None:
        """Start the ``all`` notifications once a user is known."""
        self.visible = {i for i, o in ctx.services.objects.objects.items() if ctx.can_see(o)}
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
            await self.ws.send_str(data.decode())

    async def handle(self, raw: str | bytes) -> None:
        try:
            msg = orjson.loads(raw)
        except orjson.JSONDecodeError:
            self.send({"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "invalid JSON"}})
            return
        if not isinstance(msg, dict) or not isinstance(msg.get("method"), str):
            self.send(
                {
                    "jsonrpc": "2.0",
                    "id": None,
                    "error": {"code": -32600, "message": "invalid JSON-RPC request"},
                }
            )
            return
        req_id = msg.get("id")
        try:
            result = await call(self.ctx, msg["method"], msg.get("params"))
        except ApiError as e:
            if req_id is not None:
                error: dict[str, Any] = {"code": e.code, "message": e.message}
                if e.data is not None:
                    error["data"] = e.data
                self.send({"jsonrpc": "2.0", "id": req_id, "error": error})
            return
        if req_id is not None:
            self.send({"jsonrpc": "2.0", "id": req_id, "result": result})


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """The ``/api/`` endpoint."""
    services: Services = request.app["services"]
    ws = web.WebSocketResponse(heartbeat=30, max_msg_size=16 << 20)
    await ws.prepare(request)
    ctx = Context(services, remote=request.remote or "")
    conn = Connection(ws, ctx)
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
