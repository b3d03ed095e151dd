"""The appliance's first boot for tests: a root folder, real nginx in front, the real wizard and server.

What systemd and networkd would do on the box is done by commands in the root's appliance.toml: the
server is started as a background process (its pid kept to stop it), and the network, hostname and time
commands are recorded in ``commands.log`` (this machine's own network and clock are never touched).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import warnings
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from podium_appliance.box import tls_check, tls_install
from podium_appliance.layout import Layout
from podium_appliance.setup.setup_code import SetupCode
from podium_appliance.setup.wizard import Session, make_app

from .nginxproc import Nginx, closed, start_nginx
from .serverproc import free_port
from .simproc import terminate


def record(log: Path, name: str, *args: str) -> list[str]:
    """A command that appends its name and arguments to ``log``."""
    return ["sh", "-c", f'echo "$0 $*" >> "{log}"', name, *args]


@dataclass
class Stack:
    """A first-booted appliance under ``root``: nginx, the wizard, later the server."""

    root: Path
    layout: Layout
    nginx: Nginx
    firstboot_output: str
    server_listen: str
    wizard: subprocess.Popen[bytes] | None = None
    extra: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        """Where a browser opens the appliance (HTTPS through nginx)."""
        return self.nginx.url

    @property
    def server_pid_file(self) -> Path:
        return self.root / "podium-server.service.pid"

    def commands_run(self) -> list[str]:
        """The system commands run so far (network, hostname, time)."""
        log = self.root / "commands.log"
        return log.read_text().splitlines() if log.exists() else []

    def appliance(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        """``podium-appliance --root <root> ARGS``."""
        argv = self.appliance_argv(*args)
        return subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=120)

    def appliance_argv(self, *args: str) -> list[str]:
        """The argv of ``podium-appliance --root <root> ARGS`` from this repository's code."""
        return [sys.executable, "-m", "podium_appliance", "--root", str(self.layout.root), *args]

    def start_wizard(self) -> None:
        """The wizard as its service runs it, answering on its loopback port."""
        log = (self.root / "wizard.log").open("wb")
        with log:
            self.wizard = subprocess.Popen(self.appliance_argv("wizard"), stdout=log, stderr=log)
        _wait_port(self.layout.settings().wizard_listen, self.wizard, self.root / "wizard.log")

    def wait_proxied(self, path: str = "/api/health", seconds: float = 10) -> None:
        """Wait until nginx answers ``path`` with 200 (``nginx -s reload`` returns before it applies)."""
        ctx = ssl._create_unverified_context()
        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(self.url + path, context=ctx, timeout=2) as resp:
                    if resp.status == 200:
                        return
            except urllib.error.HTTPError as e:
                e.close()  # 502 while the old workers still send to the wizard
                if time.monotonic() > deadline:
                    raise
            except OSError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.05)

    async def calls(self, *calls: tuple[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """JSON-RPC calls on one WebSocket through nginx (wss), as a browser or xo-lib makes them; the
        replies (result or error), in order."""
        url = self.url.replace("https", "wss") + "/api/"
        replies = []
        async with aiohttp.ClientSession() as http, http.ws_connect(url, ssl=False) as ws:
            sock = ws.get_extra_info("socket")
            for call_id, (method, params) in enumerate(calls, 1):
                await ws.send_json({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})
                replies.append(json.loads((await ws.receive()).data))
        await closed(sock)
        return replies

    def server_log(self) -> str:
        """What the server started by the wizard has logged."""
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """Stop everything this stack started."""
        if self.wizard is not None:
            terminate(self.wizard)
        with contextlib.suppress(OSError, ValueError):
            pid = int(self.server_pid_file.read_text())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, signal.SIGKILL)
        for proc in self.extra:
            terminate(proc)
        self.nginx.stop()


def _wait_port(listen: str, proc: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    host, _, port = listen.rpartition(":")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited with {proc.returncode}: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), 0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {listen}: {log.read_text(errors='replace')}")


def first_boot(
    root: Path,
    confirm_seconds: float = 2.0,
    deploy: dict[str, str] | None = None,
    commands: dict[str, list[str]] | None = None,
) -> Stack:
    """A fresh appliance under ``root``: nginx in setup mode, then ``podium-appliance firstboot``.

    ``deploy`` holds XenStore ``vm-data/*`` keys for the file stand-in (an unattended first boot).
    """
    layout = Layout(root / "root")
    server_listen = f"127.0.0.1:{free_port()}"
    log = root / "commands.log"
    server = 'nohup "$0" -m podium --config "$1" >"$2" 2>&1 & echo $! >"$3"'
    server_files = [
        str(layout.server_toml),
        str(root / "server.log"),
        str(root / "podium-server.service.pid"),
    ]
    # systemctl is-active: a service is active when the pid in <root>/<unit>.pid is alive
    is_active = 'kill -0 "$(cat "$0/$1.pid" 2>/dev/null)" 2>/dev/null'
    commands = {
        "server_start": ["sh", "-c", server, sys.executable, *server_files],
        "service_active": ["sh", "-c", is_active, str(root), "{unit}"],
        "server_admin": [sys.executable, "-m", "podium", "--config", "{config}"],
        "network_apply": record(log, "network_apply"),
        "network_reconfigure": record(log, "network_reconfigure", "{interface}"),
        "hostname_apply": record(log, "hostname_apply", "{hostname}"),
        "time_apply": record(log, "time_apply"),
        "bus_wait": record(log, "bus_wait"),
        "firstboot_wait": record(log, "firstboot_wait"),
    } | (commands or {})
    layout.hostname.parent.mkdir(parents=True, exist_ok=True)
    wizard_listen = f"127.0.0.1:{free_port()}"
    nginx = start_nginx(
        root,
        layout,
        mode="setup",
        server_listen=server_listen,
        wizard_listen=wizard_listen,
        commands=commands,
    )
    text = layout.appliance_toml.read_text().replace(
        "[wizard]\n", f"[wizard]\nnetwork_confirm_seconds = {confirm_seconds}\n"
    )
    layout.appliance_toml.write_text('xenstore = "file"\n' + text)
    (root / "nginx.service.pid").write_text(f"{nginx.master_pid}\n")
    for key, value in (deploy or {}).items():
        path = layout.xenstore_standin / "vm-data" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(value)
    stack = Stack(root, layout, nginx, "", server_listen)
    done = stack.appliance("firstboot")
    if done.returncode != 0:
        stack.stop()
        raise RuntimeError(f"firstboot failed: {done.stderr}")
    stack.firstboot_output = done.stdout
    return stack


@contextlib.asynccontextmanager
async def wizard_client(
    layout: Layout, done: tuple[str, ...] = ()
) -> AsyncIterator[tuple[TestClient, Session]]:
    """The wizard's application in this process (aiohttp's test server, on loopback) and a client whose
    session was opened with the setup code, the steps ``done`` marked done (their POSTs carry its csrf)."""
    with warnings.catch_warnings():  # the wizard's app keys are strings (__main__ reads app["wizard"])
        warnings.simplefilter("ignore", web.NotAppKeyWarning)
        app = make_app(layout, layout.settings())
    code = SetupCode(layout).ensure()
    async with TestClient(TestServer(app)) as client:
        async with client.post("/setup/code", data={"code": code}, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
        (session,) = app["wizard"].sessions.values()
        session.done.update(done)
        yield client, session


@dataclass
class TlsForwarder:
    """A TLS endpoint with a certificate of its own in front of another TLS endpoint (not verified)."""

    listen: tuple[str, int]
    upstream: tuple[str, int]
    fingerprint: str  # of its own certificate, as CertInfo writes it


@contextlib.contextmanager
def tls_forwarder(listen: tuple[str, int], upstream: tuple[str, int], folder: Path) -> Iterator[TlsForwarder]:
    """Serve ``listen`` with a new self-signed certificate, each connection piped to ``upstream`` over TLS
    (an event loop in a thread of its own, so that it serves a test's own event loop as well).

    The simulator's hosts share one certificate; a real pool's hosts each have their own. A forwarder in
    front of a member gives it one (the HOST_IS_SLAVE it answers still names the master's real address).
    """
    cert, key = tls_install.generate_self_signed("forwarder", [listen[0]])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cert.pem").write_bytes(cert)
    (folder / "key.pem").write_bytes(key)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    client = ssl._create_unverified_context()
    loop = asyncio.new_event_loop()
    writers: set[asyncio.StreamWriter] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError, ConnectionError):
            while data := await reader.read(1 << 16):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        try:
            far_reader, far_writer = await asyncio.open_connection(*upstream, ssl=client)
        except OSError:
            writer.close()
            return
        writers.add(far_writer)
        await asyncio.gather(pipe(reader, far_writer), pipe(far_reader, writer))

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    starting = asyncio.start_server(serve, *listen, ssl=served)
    server = asyncio.run_coroutine_threadsafe(starting, loop).result(timeout=10)

    async def stop() -> None:
        server.close()
        for writer in writers:
            writer.close()
        await asyncio.sleep(0.1)  # the TLS shutdowns

    try:
        yield TlsForwarder(listen, upstream, tls_check.validate(cert, key).fingerprint)
    finally:
        asyncio.run_coroutine_threadsafe(stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
