"""The hosts' HTTP listeners: XML-RPC at ``/`` (and ``/RPC2``, ``/xmlrpc``, ``/json``), JSON-RPC at ``/jsonrpc``, transfers (:mod:`.transfer`).

One aiohttp application serves every host; each host has its own site on its own loopback address
and the common port, and a request is answered as the host whose address it reached. Stopping a host
closes its site and drops its connections, so clients meet a refused connection as with a dead host.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from . import messages as _messages  # noqa: F401  (registers the handlers)
from .connect import ConnectSite
from .console_records import ConsoleRecords
from .console_server import Consoles
from .dispatch import dispatch
from .errors import Failure
from .rrd import handler as rrd_handler
from .simulator import Host, Simulator
from .transfer import Transfers
from .wire import (
    WireError,
    json_decode_call,
    json_failure,
    json_success,
    xml_decode_call,
    xml_failure,
    xml_success,
)

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024 * 1024  # a call larger than this is refused with 413
_CORS = {"Access-Control-Allow-Origin": "*", "Access-Control-Allow-Headers": "X-Requested-With"}
_SECRET_METHODS = ("session.login_with_password", "session.slave_local_login_with_password")


@dataclass
class HostState:
    """What a host's listener holds: its site, and the requests in flight on it."""

    site: web.BaseSite | None = None
    transports: set[asyncio.BaseTransport] = field(default_factory=set)
    calls: set[asyncio.Task[Any]] = field(default_factory=set)


class Listeners:
    """The HTTP side of a simulator: start, stop and restart hosts, drop connections."""

    def __init__(
        self, sim: Simulator, port: int = 0, tls: ssl.SSLContext | None = None, jsonrpc: bool = True
    ) -> None:
        self.sim = sim
        self.port = port
        self.port_fixed = port != 0
        self.tls = tls
        self.app = web.Application(client_max_size=MAX_BODY)
        # Hosts older than XenServer 7.3 have no JSON-RPC: /jsonrpc reaches their XML-RPC handler.
        self.app.router.add_route("POST", "/jsonrpc", self._jsonrpc if jsonrpc else self._xmlrpc)
        for path in ("/", "/RPC2", "/xmlrpc", "/json"):
            self.app.router.add_route("POST", path, self._xmlrpc)
        self.app.router.add_route("OPTIONS", "/{tail:.*}", self._options)
        self.app.router.add_route("GET", "/", self._index)
        Transfers(sim, self.hold).add_routes(self.app)
        self.app.router.add_route("GET", "/rrd_updates", rrd_handler(sim))
        self.consoles = Consoles()  # CONNECT /console, sniffed by each host's ConnectSite
        # console records in step with the VMs, at these listeners' URLs; their clients follow them
        self.console_records = ConsoleRecords(sim, self.url, self.consoles.follow)
        self.runner = web.AppRunner(self.app, access_log=None, handle_signals=False)
        self.state: dict[str, HostState] = {}
        sim.switch = self  # hosts that reboot or restart their xapi close and reopen their listener

    @property
    def scheme(self) -> str:
        """``https`` with --tls, else ``http``."""
        return "https" if self.tls else "http"

    def url(self, host: Host) -> str:
        """The URL of a host's XAPI endpoint."""
        return f"{self.scheme}://{host.address}:{self.port}"

    async def start(self) -> None:
        """Open every host's listener on one common port (picking a free one when the port is 0)."""
        await self.runner.setup()
        hosts = [h for pool in self.sim.pools for h in pool.hosts.values()]
        for attempt in range(20):
            try:
                for host in hosts:
                    await self.start_host(host)
                self.console_records.relocate()  # console locations name the port, known only now
                return
            except OSError as e:
                # Another process holds the port on one of our addresses: let go and pick again.
                for host in hosts:
                    await self.stop_host(host)
                if attempt == 19 or self.port_fixed:
                    raise OSError(f"cannot listen on port {self.port} of every host address: {e}") from e
                self.port = 0

    async def start_host(self, host: Host) -> None:
        """Open a host's listener."""
        st = self.state.setdefault(host.ref, HostState())
        if st.site is not None:
            return
        site = ConnectSite(
            self.runner,
            host.address,
            self.port,
            self._connect,
            ssl_context=self.tls,
            reuse_address=True,
        )
        await site.start()
        if self.port == 0:
            server = site._server
            assert server is not None
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        st.site = site
        host.up = True

    async def stop_host(self, host: Host) -> None:
        """Close a host's listener and every connection and call on it."""
        host.up = False
        st = self.state.get(host.ref)
        if st is None:
            return
        if st.site is not None:
            await st.site.stop()
            st.site = None
        self._drop(st)

    def hold(
        self, host: Host, transport: asyncio.BaseTransport, task: asyncio.Task[Any] | None = None
    ) -> None:
        """Count a connection (and the task serving it) as the host's: stopping the host, or dropping
        connections, ends them."""
        st = self.state[host.ref]
        st.transports.add(transport)
        if task is not None:
            st.calls.add(task)

    def release(self, host: Host, transport: asyncio.BaseTransport, task: asyncio.Task[Any]) -> None:
        """Forget a connection, and the task that served it, once it is over."""
        st = self.state[host.ref]
        st.transports.discard(transport)
        st.calls.discard(task)

    def drop_connections(self) -> int:
        """Close every open client connection of every host (listeners stay up); returns how many."""
        return sum(self._drop(st) for st in self.state.values())

    def _drop(self, st: HostState) -> int:
        count = len(st.transports)
        for call in list(st.calls):
            call.cancel()
        for transport in list(st.transports):
            transport.abort()  # type: ignore[attr-defined]
        st.transports.clear()
        st.calls.clear()
        return count

    async def close(self) -> None:
        """Stop everything."""
        for st in self.state.values():
            self._drop(st)
        await self.consoles.close()
        await self.runner.cleanup()

    # -- request handling ----------------------------------------------------------------------
    def _connect(self, transport: asyncio.Transport, data: bytes) -> None:
        """Hand a connection whose first bytes are a CONNECT to the consoles, held as its host's."""
        host = self.sim.host_reached(transport)
        if host is None or not host.up:  # stopped since it accepted the connection
            transport.abort()
            return
        task = self.consoles.accept(host, transport, data)
        self.hold(host, transport, task)
        task.add_done_callback(lambda done: self.release(host, transport, done))

    def _host_of(self, request: web.Request) -> Host | None:
        return self.sim.host_reached(request.transport)

    async def _call(self, request: web.Request, method: str, params: list[Any]) -> Any:
        host = self._host_of(request)
        if host is None or not host.up:
            raise Failure("HOST_OFFLINE", "")
        st = self.state[host.ref]
        task = asyncio.current_task()
        assert task is not None
        if request.transport is not None:
            st.transports.add(request.transport)
        st.calls.add(task)
        try:
            return await dispatch(self.sim, host.pool, host, method, params)
        except Failure:
            raise
        except Exception as e:  # a simulator bug: answer as xapi answers its own, and keep serving
            log.exception("%s failed unexpectedly", method)
            raise Failure("INTERNAL_ERROR", f"{type(e).__name__}: {e}") from e
        finally:
            st.calls.discard(task)

    async def _read(self, request: web.Request) -> bytes:
        try:
            return await request.read()
        except web.HTTPRequestEntityTooLarge:
            log.warning("refused a call of more than %d bytes from %s", MAX_BODY, request.remote)
            raise

    async def _xmlrpc(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        try:
            method, params = xml_decode_call(body)
        except WireError as e:
            log.warning("bad XML-RPC request from %s: %s", request.remote, e)
            return _html_error(str(e))
        try:
            value = await self._call(request, method, params)
            text = xml_success(value)
        except Failure as f:
            _log_failure(method, f)
            text = xml_failure(f.description)
        return web.Response(body=text, content_type="text/xml", headers=_CORS)

    async def _jsonrpc(self, request: web.Request) -> web.Response:
        body = await self._read(request)
        try:
            method, params, req_id, version = json_decode_call(body)
        except WireError as e:
            log.warning("bad JSON-RPC request from %s: %s", request.remote, e)
            return _html_error(str(e))
        try:
            value = await self._call(request, method, params)
            text = json_success(value, req_id, version)
        except Failure as f:
            _log_failure(method, f)
            text = json_failure(f.description, req_id, version)
        resp = web.Response(body=text, headers=_CORS)
        resp.headers["Content-Type"] = "application/json"  # exactly: xen-api rejects a charset suffix
        return resp

    async def _options(self, request: web.Request) -> web.Response:
        return web.Response(status=200, headers=_CORS)

    async def _index(self, request: web.Request) -> web.Response:
        host = self._host_of(request)
        name = host.name if host else "?"
        return web.Response(
            text=f"<html><body><h1>XAPI simulator: host {name}</h1></body></html>", content_type="text/html"
        )


def _html_error(message: str) -> web.Response:
    # xapi answers a body it cannot parse with HTTP 500 and an HTML page naming the parse error.
    text = f"<html><body><h1>HTTP 500 internal server error</h1>{_escape(message)}</body></html>"
    return web.Response(status=500, text=text, content_type="text/html")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _log_failure(method: str, f: Failure) -> None:
    if method in _SECRET_METHODS:
        log.info("%s failed: %s", method, f.code)  # parameters may hold the user name; never the password
    else:
        log.debug("%s failed: %s", method, f)
