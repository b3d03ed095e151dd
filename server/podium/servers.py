"""The pools Podium connects to ("servers", as Xen Orchestra calls them): persisted, watched, shown.

Each enabled server has one :class:`~podium.xapi.PoolWatcher` task feeding its
:class:`~podium.cache.PoolCache`. Passwords are encrypted at rest; the addresses of a pool's hosts are
remembered so that a new master can be found after the old one is gone. A pool already connected
through another server entry is refused, and a read-only server refuses every write.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from sqlalchemy import select

from .cache import KEPT_CLASSES, DuplicatePool, ObjectCache, PoolCache
from .db import Database, SecretBox, Server
from .errors import PodiumError
from .net import Endpoint
from .xapi import PoolWatcher, Status, XapiClient

log = logging.getLogger(__name__)


class NoSuchServer(PodiumError):
    """No server has this id."""

    code = 1
    status = 404


class InvalidServer(PodiumError):
    """A server's settings are not acceptable."""

    code = 10
    status = 400


@dataclass
class PoolConnection:
    """A running connection: the client, its watcher task and the pool's cache."""

    client: XapiClient
    cache: PoolCache
    watcher: PoolWatcher
    task: asyncio.Task[None] | None = None
    status: Status = field(default_factory=Status)


class ServerManager:
    """Servers: their records in the database, and their live connections."""

    def __init__(self, db: Database, secrets: SecretBox, objects: ObjectCache) -> None:
        self.db = db
        self.secrets = secrets
        self.objects = objects
        self.connections: dict[str, PoolConnection] = {}
        self.owners: dict[str, str] = {}  # pool uuid -> the server id connected to it
        self._http: aiohttp.ClientSession | None = None
        self._locks: dict[str, asyncio.Lock] = {}  # one change at a time per server
        self._tasks: set[asyncio.Task[None]] = set()

    def _lock(self, server_id: str) -> asyncio.Lock:
        return self._locks.setdefault(server_id, asyncio.Lock())

    async def start(self) -> None:
        """Connect every enabled server."""
        async with self.db.session() as s:
            servers = (await s.scalars(select(Server))).all()
        for server in servers:
            if not server.enabled:
                continue
            try:
                self._connect(server)
            except PodiumError as e:  # one unusable row (a secret that no longer decrypts) stops only itself
                log.error("server %s cannot connect: %s", server.id, e.message)

    async def close(self) -> None:
        """Stop every connection."""
        for server_id in list(self.connections):
            await self._disconnect(server_id, clear=False)
        for task in list(self._tasks):
            await task
        if self._http is not None:
            await self._http.close()

    # -- reading -------------------------------------------------------------------------------
    async def get_all(self) -> list[dict[str, Any]]:
        """Every server as the API shows it (never its password)."""
        async with self.db.session() as s:
            servers = (await s.scalars(select(Server).order_by(Server.created))).all()
        return [self.describe(server) for server in servers]

    def describe(self, server: Server) -> dict[str, Any]:
        """One server as the API shows it."""
        conn = self.connections.get(server.id)
        status = conn.status if conn else Status("disconnected")
        return {
            "id": server.id,
            "label": server.label,
            "host": server.host,
            "username": server.username,
            "allowUnauthorized": server.allow_unauthorized,
            "fingerprint": server.fingerprint,
            "readOnly": server.read_only,
            "autoConnect": server.auto_connect,
            "enabled": server.enabled,
            "status": status.state,
            "error": status.last_error or None,
            "master": status.master or None,
            "poolId": server.pool_uuid,
        }

    def client_of(self, pool_id: str) -> XapiClient:
        """The client connected to a pool (for the API's calls)."""
        for conn in self.connections.values():
            if conn.cache.pool_id == pool_id and conn.status.state == "connected":
                return conn.client
        raise PodiumError(f"pool {pool_id} is not connected")

    # -- writing -------------------------------------------------------------------------------
    async def add(
        self,
        host: str,
        username: str,
        password: str,
        *,
        label: str = "",
        allow_unauthorized: bool = False,
        fingerprint: str | None = None,
        read_only: bool = False,
        auto_connect: bool = True,
    ) -> str:
        """Remember a new server and, when ``auto_connect``, connect it; returns its id."""
        _check(host, fingerprint)
        server = Server(
            label=label,
            host=host.strip(),
            username=username,
            password=self.secrets.encrypt(password),
            allow_unauthorized=allow_unauthorized,
            fingerprint=fingerprint or None,
            read_only=read_only,
            auto_connect=auto_connect,
            enabled=auto_connect,
            known_hosts=[],
        )
        async with self.db.session() as s, s.begin():
            s.add(server)
        log.info("server %s added: %s as %s", server.id, server.host, username)
        if auto_connect:
            self._connect(server)
        return server.id

    async def remove(self, server_id: str) -> None:
        """Forget a server; its pool's objects leave."""
        async with self._lock(server_id):
            await self._disconnect(server_id, clear=True)
            async with self.db.session() as s, s.begin():
                server = await s.get(Server, server_id)
                if server is None:
                    raise NoSuchServer(f"no server {server_id}")
                await s.delete(server)

    async def enable(self, server_id: str) -> None:
        """Connect a server (and keep it connected across restarts)."""
        async with self._lock(server_id):
            server = await self._update(server_id, enabled=True)
            if server_id not in self.connections:
                self._connect(server)

    async def disable(self, server_id: str) -> None:
        """Disconnect a server; its pool's objects leave."""
        async with self._lock(server_id):
            await self._update(server_id, enabled=False)
            await self._disconnect(server_id, clear=True)

    async def set(self, server_id: str, **changes: Any) -> None:
        """Change a server's settings; a connected server reconnects with them."""
        allowed = {
            "label",
            "host",
            "username",
            "password",
            "allow_unauthorized",
            "fingerprint",
            "read_only",
            "auto_connect",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise InvalidServer(f"unknown server settings: {', '.join(sorted(unknown))}")
        if "host" in changes or "fingerprint" in changes:
            _check(changes.get("host", "x"), changes.get("fingerprint"))
        if "password" in changes:
            changes["password"] = self.secrets.encrypt(changes["password"])
        async with self._lock(server_id):
            server = await self._update(server_id, **changes)
            if server_id in self.connections and server.enabled and set(changes) - {"label", "auto_connect"}:
                # The new settings may lead to another pool: the old objects leave, the new ones enter.
                await self._disconnect(server_id, clear=True)
                self._connect(server)

    async def _update(self, server_id: str, **changes: Any) -> Server:
        async with self.db.session() as s, s.begin():
            server = await s.get(Server, server_id)
            if server is None:
                raise NoSuchServer(f"no server {server_id}")
            for key, value in changes.items():
                setattr(server, key, value)
        return server

    # -- connections ---------------------------------------------------------------------------
    def _connect(self, server: Server) -> None:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar()
            )
        client = XapiClient(
            server.host,
            server.username,
            self.secrets.decrypt(server.password),
            allow_unauthorized=server.allow_unauthorized,
            fingerprint=server.fingerprint,
            read_only=server.read_only,
            http=self._http,
        )
        server_id = server.id
        cache = PoolCache(
            self.objects,
            list(KEPT_CLASSES),
            on_status=lambda st: self._on_status(server_id, st),
            claim=lambda pool: self._claim(server_id, pool),
        )
        client.tasks = cache
        watcher = PoolWatcher(client, cache, KEPT_CLASSES, known=server.known_hosts or [])
        conn = PoolConnection(client, cache, watcher)
        self.connections[server_id] = conn
        conn.task = asyncio.get_running_loop().create_task(watcher.run(), name=f"pool watcher {server.host}")

    def _claim(self, server_id: str, pool_uuid: str) -> None:
        owner = self.owners.setdefault(pool_uuid, server_id)
        if owner != server_id:
            raise DuplicatePool(f"this pool is already connected through server {owner}")

    def _on_status(self, server_id: str, status: Status) -> None:
        conn = self.connections.get(server_id)
        if conn is None:
            return
        conn.status = status
        if status.state == "connected":
            task = asyncio.get_running_loop().create_task(self._remember(server_id, conn))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _remember(self, server_id: str, conn: PoolConnection) -> None:
        try:
            await self._update(
                server_id, pool_uuid=conn.cache.pool_id, known_hosts=list(conn.watcher.known_hosts)
            )
        except NoSuchServer:
            pass

    async def _disconnect(self, server_id: str, clear: bool) -> None:
        conn = self.connections.pop(server_id, None)
        if conn is None:
            return
        try:
            if conn.task is not None:
                conn.task.cancel()
                try:
                    await conn.task
                except asyncio.CancelledError:
                    pass
                except Exception:
                    log.exception("the event loop of server %s had failed", server_id)
            await conn.client.close()
        finally:
            if self.owners.get(conn.cache.pool_id) == server_id:
                del self.owners[conn.cache.pool_id]
            if clear:
                conn.cache.clear()


def _check(host: str, fingerprint: str | None) -> None:
    try:
        Endpoint.parse(host)
    except ValueError as e:
        raise InvalidServer(f"host: {e}") from e
    if fingerprint:
        hexdigits = fingerprint.replace(":", "").strip()
        if len(hexdigits) != 64 or any(c not in "0123456789abcdefABCDEF" for c in hexdigits):
            raise InvalidServer("fingerprint: a SHA-256 digest of 64 hexadecimal digits, colons allowed")
