"""XAPI's ``CONNECT /console`` on the hosts' listeners, beside aiohttp.

aiohttp refuses a CONNECT whose target is a path rather than ``host:port`` (authority form, RFC 9112)
before any handler runs, and XAPI's clients send ``CONNECT /console?… HTTP/1.0``. So each host's
:class:`ConnectSite` looks at the first bytes of every connection: a CONNECT is handed, with its bytes,
to the consoles (:meth:`xapisim.console_server.Consoles.accept`), anything else to aiohttp as if it had
accepted the connection itself. Only the first packet of a connection pays for the look.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web

# Takes over a connection whose first bytes are a CONNECT: its transport and those bytes.
Accept = Callable[[asyncio.Transport, bytes], None]


class _Sniffer(asyncio.Protocol):
    """The first bytes of a connection decide: XAPI's CONNECT goes to the consoles, the rest to aiohttp."""

    def __init__(self, http: Callable[[], asyncio.BaseProtocol], connect: Accept) -> None:
        self.http, self.connect = http, connect
        self.buffer = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport until the first bytes say whose it is."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Hand the connection, with what it sent so far, to the consoles or to aiohttp."""
        self.buffer += data
        if len(self.buffer) < 8 and b"CONNECT ".startswith(self.buffer):
            return  # could still be a CONNECT: wait for more
        assert self.transport is not None
        if self.buffer.startswith(b"CONNECT "):
            self.connect(self.transport, self.buffer)
            return
        protocol = self.http()
        self.transport.set_protocol(protocol)
        protocol.connection_made(self.transport)
        assert isinstance(protocol, asyncio.Protocol)
        protocol.data_received(self.buffer)


class ConnectSite(web.TCPSite):
    """A TCP site whose connections may also be XAPI's ``CONNECT /console``."""

    def __init__(self, runner: web.BaseRunner, host: str, port: int, connect: Accept, **kwargs: Any) -> None:
        super().__init__(runner, host, port, **kwargs)
        self.connect = connect

    async def start(self) -> None:
        """Listen, with each connection sniffed before aiohttp sees it."""
        self._runner._reg_site(self)
        server = self._runner.server
        assert server is not None
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: _Sniffer(server, self.connect),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1]
