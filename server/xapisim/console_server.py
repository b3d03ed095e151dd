"""VM consoles served as xapi serves them: ``CONNECT /console`` on a host, answered with RFB or text.

A client reads a console's ``location`` (see :mod:`.console_records`), opens a connection to that host
and sends ``CONNECT /console?uuid=…&session_id=OpaqueRef:… HTTP/1.0`` (the session may instead come as
a ``Cookie: session_id=…`` header). The host answers ``HTTP/1.1 200 OK`` and a blank line, and the rest
of the connection is the console: RFB for ``rfb`` consoles (:mod:`xapisim.rfb`), the raw text of the
guest's tty for ``vt100`` ones. Refusals are xapi's (console.ml, xapi_http.ml, http_svr.ml): 401 for
a missing or invalid session, 500 for an unknown console or a VM that is not running on that host,
403 for a CONNECT to another path.

Connections reach :meth:`Consoles.accept` from the listeners (through :class:`xapisim.connect.ConnectSite`:
aiohttp itself refuses a CONNECT to a path). Each running VM has one terminal, shared by its clients;
when its domain goes away (the VM stops, reboots or moves, :meth:`Consoles.follow`), its clients are
disconnected. ``XAPISIM_CONSOLE_TICK`` (seconds, default 0.5; 0 stops it) sets how often the clock and
cursor change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any
from urllib.parse import parse_qsl

from . import rfb
from .console_records import PATH
from .simulator import Host, Pool
from .terminal import Terminal, serve_text

log = logging.getLogger(__name__)

_HEAD_LIMIT = 16 * 1024
_SERVER_ERROR = (
    "<html><body><h1>HTTP 500 internal server error</h1>An unexpected error occurred; please wait a "
    "while and try again. If the problem persists, please contact your support representative."
    "<h1> Additional information </h1>{}</body></html>"
)
_UNAUTHORISED = (
    "<html><body><h1>HTTP 401 unauthorised</h1>Please check your credentials and retry.</body></html>"
)
_FORBIDDEN = (
    "<html><body><h1>HTTP 403 forbidden</h1>Access to the requested resource is forbidden.</body></html>"
)


class Refused(Exception):
    """A console request xapi answers with an HTTP error."""

    def __init__(self, status: str, body: str, headers: tuple[str, ...] = ()) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


def _failure(detail: str) -> Refused:
    escaped = detail.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    return Refused("500 Internal Error", _SERVER_ERROR.format(escaped))


# --- the server ------------------------------------------------------------------------------------
class Consoles:
    """The consoles of a simulator's hosts: CONNECT handling, one terminal per running VM."""

    def __init__(self, tick: float | None = None) -> None:
        self.tick = _tick_setting() if tick is None else tick
        self.terminals: dict[tuple[int, str], Terminal] = {}
        self.clients: dict[tuple[int, str], set[asyncio.Task[Any]]] = {}
        self.tasks: set[asyncio.Task[Any]] = set()
        self.ticker: asyncio.Task[None] | None = None

    def follow(self, pool: Pool, vm_ref: str) -> None:
        """Disconnect a VM's console clients when its domain went away: it no longer runs, or runs on
        another host than the one its terminal was drawn for (the records' upkeep calls this)."""
        key = (pool.index, vm_ref)
        vm = pool.db.get("VM", vm_ref)
        term = self.terminals.get(key)
        if (
            vm is None
            or vm["power_state"] not in ("Running", "Paused")
            or (term is not None and term.host_ref != vm["resident_on"])
        ):
            self._drop(key)

    def _drop(self, key: tuple[int, str]) -> None:
        self.terminals.pop(key, None)
        for task in self.clients.pop(key, set()):
            task.cancel()  # the domain's qemu or vncterm is gone: so is the connection

    async def close(self) -> None:
        """Disconnect every console client and stop the clock."""
        tasks = [*self.tasks, *([self.ticker] if self.ticker else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.ticker = None

    # -- connections ---------------------------------------------------------------------------
    def accept(self, host: Host, transport: asyncio.Transport, data: bytes) -> asyncio.Task[Any]:
        """Take over a connection to ``host`` whose first bytes are a CONNECT request; returns the task
        that serves it."""
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_HEAD_LIMIT)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        reader.feed_data(data)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        task = loop.create_task(self._serve(host, reader, writer), name="console")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _serve(self, host: Host, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        version = "1.1"
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
            _method, target, version, cookies = _parse_head(head)
            key, record = self._console(host, target, cookies)
            writer.write(
                b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nCache-Control: no-cache, no-store\r\n\r\n"
            )
            await self._attach(host.pool, key, record, reader, writer)
        except Refused as r:
            writer.write(_response(version, r))
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError) as e:
            log.info(
                "console request from %s failed: %s", writer.get_extra_info("peername"), type(e).__name__
            )
        finally:
            writer.close()

    def _console(
        self, host: Host, target: str, cookies: dict[str, str]
    ) -> tuple[tuple[int, str], dict[str, Any]]:
        """The console a CONNECT names, after xapi's checks in xapi's order."""
        path, _, query_text = target.partition("?")
        if not path.startswith(PATH):
            raise Refused("403 Forbidden", _FORBIDDEN)  # no CONNECT handler: http_svr's default callback
        query = dict(parse_qsl(query_text, keep_blank_values=True))
        session = cookies.get("session_id", query.get("session_id"))
        db = host.pool.db
        if session is None or db.get("session", session) is None:
            raise Refused(
                "401 Unauthorised", _UNAUTHORISED, ('WWW-Authenticate: Basic realm="connect_console"',)
            )
        if "uuid" in query:
            ref = db.by_uuid("VM", query["uuid"]) or db.by_uuid("console", query["uuid"])
            if ref is None:
                raise _failure(f'Db_exn.Read_missing_uuid("console", "", "{query["uuid"]}")')
        elif "ref" in query:
            ref = query["ref"]
        else:
            raise _failure("Console.Failure")  # neither ref nor uuid
        cls = db.class_of.get(ref)
        if cls == "VM":
            consoles = [
                c
                for c in db.records("VM")[ref]["consoles"]
                if (db.get("console", c) or {}).get("protocol") == "rfb"
            ]
            if not consoles:
                raise _failure("Console.Failure")  # no default (rfb) console
            ref = consoles[0]
        elif cls != "console":
            raise _failure("Console.Failure")
        record = db.records("console")[ref]
        vm = db.get("VM", record["VM"])
        if vm is None or vm["power_state"] != "Running" or vm["resident_on"] != host.ref:
            raise _failure("Console.Failure")  # check_vm_is_running_here
        return (host.pool.index, str(record["VM"])), record

    async def _attach(
        self,
        pool: Pool,
        key: tuple[int, str],
        record: dict[str, Any],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        term = self._terminal(pool, key)
        task = asyncio.current_task()
        assert task is not None
        self.clients.setdefault(key, set()).add(task)
        try:
            if record["protocol"] == "rfb":
                await rfb.serve(reader, writer, term, term.name)
            else:
                await serve_text(reader, writer, term)
        finally:
            self.clients.get(key, set()).discard(task)

    def _terminal(self, pool: Pool, key: tuple[int, str]) -> Terminal:
        term = self.terminals.get(key)
        if term is None:
            vm = pool.db.records("VM")[key[1]]
            host = pool.hosts[vm["resident_on"]]
            hostname = str(host.record["hostname"]) if vm["is_control_domain"] else ""  # dom0 is the host
            term = Terminal(str(vm["name_label"]), str(vm["uuid"]), host.name, hostname)
            term.host_ref = str(vm["resident_on"])  # moving to another host is a new domain
            self.terminals[key] = term
        if self.ticker is None and self.tick > 0:
            self.ticker = asyncio.get_running_loop().create_task(self._tick(), name="console clock")
        return term

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            for key, term in list(self.terminals.items()):
                if self.clients.get(key):  # nobody watching: nothing to draw
                    term.tick()


def _tick_setting() -> float:
    text = os.environ.get("XAPISIM_CONSOLE_TICK", "0.5")
    try:
        return max(0.0, float(text))
    except ValueError:
        log.warning("XAPISIM_CONSOLE_TICK=%r is not a number of seconds: using 0.5", text)
        return 0.5


def _parse_head(head: str) -> tuple[str, str, str, dict[str, str]]:
    """Method, target, HTTP version and cookies of a request head."""
    lines = head.split("\r\n")
    parts = lines[0].split()
    if len(parts) != 3 or not parts[2].startswith("HTTP/"):
        raise ValueError("malformed request line")
    cookies: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "cookie":
            for item in value.split(";"):
                k, _, v = item.strip().partition("=")
                cookies[k] = v
    version = "1.0" if parts[2] == "HTTP/1.0" else "1.1"
    return parts[0], parts[1], version, cookies


def _response(version: str, refused: Refused) -> bytes:
    body = refused.body.encode()
    lines = [
        f"HTTP/{version} {refused.status}",
        f"Content-Length: {len(body)}",
        "Content-Type: text/html",
        "Connection: close",
        "Cache-Control: no-cache, no-store",
        *refused.headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
