"""Run the real nginx for tests, as the appliance runs it but under a temporary prefix, on loopback only.

The main nginx.conf written here mirrors Debian's (``/etc/nginx/nginx.conf``: the same http-level
directives, so a duplicate in the appliance's file fails here as it would on the box) and includes the
folder of ``Layout.nginx_conf`` as Debian includes ``conf.d/*.conf``. Every file nginx writes (pid, logs,
temporary folders) is under the prefix; the machine's /etc/nginx is only read (mime.types).

Also what the proxy's test and its benchmark (tests/bench/bench_proxy.py) share: clients that trust the
installed certificate, the API's WebSocket through nginx, and a VM import and export streamed through it
while nginx's workers are watched (:func:`vm_round_trip`).
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import hashlib
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from podium import xva as xva_lib
from podium_appliance.box import tls_install
from podium_appliance.box.proxy import render
from podium_appliance.layout import Layout, write_atomic

from .procstat import status_kb
from .serverproc import Api, free_port, wait_object

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
MIME_TYPES = Path("/etc/nginx/mime.types")
TEMP_PATHS = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")


@dataclass
class Nginx:
    """An nginx (master process and workers) run for a test."""

    prefix: Path
    conf: Path  # the main nginx.conf
    layout: Layout
    http_port: int
    https_port: int
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The HTTPS base URL."""
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def http_url(self) -> str:
        """The plain HTTP base URL (which redirects)."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def body_temp(self) -> Path:
        """client_body_temp_path: where nginx would buffer request bodies."""
        return self.prefix / "client_body_temp"

    @property
    def error_log_path(self) -> Path:
        return self.prefix / "error.log"

    def error_log(self) -> str:
        """What nginx has logged so far."""
        return self.error_log_path.read_text(errors="replace") if self.error_log_path.exists() else ""

    @property
    def master_pid(self) -> int:
        """The master process (a child of the test: nginx runs with daemon off)."""
        assert self.proc is not None
        return self.proc.pid

    def served_fingerprint(self) -> str:
        """The SHA-256 fingerprint of the certificate a new TLS connection gets, as CertInfo writes it."""
        return served_fingerprint(self.https_port)

    def worker_pids(self, include_old: bool = False) -> list[int]:
        """The master's workers; with ``include_old``, also those finishing after a reload."""
        found = []
        for pid in _children(self.master_pid):
            title = _cmdline(pid)
            if title.startswith("nginx: worker process") and (include_old or "shutting down" not in title):
                found.append(pid)
        return sorted(found)

    def commands(self) -> dict[str, list[str]]:
        """The appliance's proxy commands for this nginx."""
        base = ["-p", f"{self.prefix}/", "-c", str(self.conf)]
        return {"proxy_test": [NGINX, "-t", "-q", *base], "proxy_reload": [NGINX, "-s", "reload", *base]}

    def appliance_toml(
        self,
        server_listen: str = "127.0.0.1:8000",
        wizard_listen: str = "127.0.0.1:8001",
        commands: dict[str, list[str]] | None = None,
    ) -> str:
        """An appliance.toml for this nginx: its ports, loopback only, its commands (and ``commands``)."""
        lines = [
            f'[server]\nlisten = "{server_listen}"\n',
            f'[wizard]\nlisten = "{wizard_listen}"\n',
            f'[proxy]\nhttp_port = {self.http_port}\nhttps_port = {self.https_port}\nlisten = ["127.0.0.1"]\n',
            "[commands]",
        ]
        for name, argv in (self.commands() | (commands or {})).items():
            lines.append(f"{name} = [{', '.join(_toml_string(a) for a in argv)}]")
        return "\n".join(lines) + "\n"

    def write_appliance_toml(self, **kwargs: object) -> None:
        """Write :meth:`appliance_toml` into the layout's appliance.toml."""
        self.layout.etc.mkdir(parents=True, exist_ok=True)
        self.layout.appliance_toml.write_text(self.appliance_toml(**kwargs))  # type: ignore[arg-type]

    def main_conf(self) -> str:
        """The main nginx.conf: Debian's, its paths under the prefix."""
        p = self.prefix
        user = ""
        if os.geteuid() == 0:  # Debian's workers run as www-data; here as whoever runs the tests
            user = f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};\n"
        temps = "".join(f"    {name}_temp_path {p}/{name}_temp;\n" for name in TEMP_PATHS)
        mime = f"    include {MIME_TYPES};\n" if MIME_TYPES.exists() else ""
        return (
            f"{user}worker_processes auto;\npid {p}/nginx.pid;\nlock_file {p}/nginx.lock;\n"
            f"error_log {self.error_log_path} warn;\n\n"
            "events {\n    worker_connections 768;\n}\n\n"
            "http {\n    sendfile on;\n    tcp_nopush on;\n    types_hash_max_size 2048;\n"
            f"{mime}    default_type application/octet-stream;\n"
            "    ssl_protocols TLSv1 TLSv1.1 TLSv1.2 TLSv1.3;\n    ssl_prefer_server_ciphers on;\n"
            f"    access_log {p}/access.log;\n    gzip on;\n{temps}"
            f"    include {self.layout.nginx_conf.parent.absolute()}/*.conf;\n}}\n"
        )

    def start(self) -> None:
        """Start the master (daemon off, a child of this process) and wait until HTTPS accepts."""
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.conf.write_text(self.main_conf())
        out = (self.prefix / "stderr.log").open("wb")
        with out:
            self.proc = subprocess.Popen(
                [NGINX, "-p", f"{self.prefix}/", "-c", str(self.conf), "-g", "daemon off;"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                said = (self.prefix / "stderr.log").read_text(errors="replace")
                raise RuntimeError(f"nginx exited with {self.proc.returncode}: {said}{self.error_log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.https_port), 0.5):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not listen on {self.https_port}: {self.error_log()}")

    def reload(self) -> None:
        """``nginx -s reload`` (what the proxy_reload command does)."""
        subprocess.run(self.commands()["proxy_reload"], check=True, capture_output=True)

    def stop(self) -> None:
        """Fast shutdown (SIGTERM: open WebSockets do not hold it up), then make sure no worker is left."""
        if self.proc is None:
            return
        workers = self.worker_pids(include_old=True) if self.proc.poll() is None else []
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for pid in workers:
            if _cmdline(pid).startswith("nginx: worker"):  # still there, and still an nginx worker
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


async def closed(sock: Any) -> None:
    """Wait until aiohttp has closed a TLS connection's socket: it does so in the background, after the
    TLS shutdown, and a test whose event loop ends first leaves it to the garbage collector (a warning)."""
    for _ in range(250):
        if sock is None or sock.fileno() == -1:
            return
        await asyncio.sleep(0.02)


def _toml_string(text: str) -> str:
    return json.dumps(text)  # JSON's strings are TOML's basic strings


def _children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (from /proc/<pid>/stat)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # the command name is in parentheses and may hold spaces: the fields after the last ')'
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def start_nginx(
    root: Path,
    layout: Layout,
    *,
    mode: str = "ready",
    server_listen: str = "127.0.0.1:8000",
    wizard_listen: str = "127.0.0.1:8001",
    commands: dict[str, list[str]] | None = None,
) -> Nginx:
    """nginx with its prefix under ``root``, serving ``layout``'s configuration on free loopback ports.

    Writes the layout's appliance.toml (ports, loopback, commands), a self-signed certificate for
    127.0.0.1 unless one is installed, and ``mode``'s configuration unless one is there. Stop it with
    :meth:`Nginx.stop`.
    """
    prefix = root / "nginx"
    nginx = Nginx(prefix, prefix / "nginx.conf", layout, free_port(), free_port())
    nginx.write_appliance_toml(server_listen=server_listen, wizard_listen=wizard_listen, commands=commands)
    tls_install.ensure_certificate(layout, "localhost", ["127.0.0.1"])
    if not layout.nginx_conf.exists():
        write_atomic(layout.nginx_conf, render(layout, layout.settings(), mode))
    nginx.start()
    return nginx


# Clients of the appliance's nginx, and VM transfers through it

GiB = 1 << 30
MB = 1 << 20


def trusting(layout: Layout) -> ssl.SSLContext:
    """A client context that trusts the installed (self-signed) certificate and nothing else."""
    return ssl.create_default_context(cadata=layout.tls_cert.read_text())


class ProxiedApi(Api):
    """The API's WebSocket through nginx (wss), with the given TLS context."""

    def __init__(self, nginx: Nginx, ctx: ssl.SSLContext) -> None:
        super().__init__(nginx.url)
        self.ctx = ctx

    async def __aenter__(self) -> ProxiedApi:
        self.http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=self.ctx))
        self.ws = await self.http.ws_connect(self.url.replace("https", "wss", 1) + "/api/")
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        sock = self.ws.get_extra_info("socket")
        await super().__aexit__(*exc)
        await closed(sock)


class FilledDisk:
    """A disk whose every MiB holds data (one byte set, the rest zeros): every chunk is in the XVA."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._chunk = b"\x5a" + bytes(xva_lib.CHUNK_SIZE - 1)

    def read_at(self, offset: int, length: int) -> bytes:
        return self._chunk[:length]


def written_bytes(pid: int) -> int:
    """What a process has written to disk so far (/proc/<pid>/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


@dataclass(frozen=True)
class Figures:
    """One transfer through nginx: its length and duration, and what nginx's workers did meanwhile."""

    what: str
    length: int
    seconds: float
    rss_growth_mb: float  # the peak RSS growth of the busiest worker
    written: int  # bytes all workers wrote to disk
    via: str = "through nginx"

    @property
    def mb_per_s(self) -> float:
        return self.length / self.seconds / 1e6

    def line(self) -> str:
        return (
            f"{self.what} of {self.length / GiB:.2f} GiB {self.via}: {self.mb_per_s:,.0f} MB/s "
            f"({self.seconds:.1f} s), nginx worker peak RSS growth {self.rss_growth_mb:.1f} MB, "
            f"{self.written:,} bytes written to disk"
        )


class Watch:
    """What nginx's workers do over a transfer: their peak RSS growth (MB), the bytes they write to disk."""

    def __init__(self, nginx: Nginx) -> None:
        self.nginx = nginx
        self.workers = nginx.worker_pids()
        self.rss0 = {pid: status_kb(pid, "VmRSS") for pid in self.workers}
        for pid in self.workers:
            with contextlib.suppress(OSError):  # root only: otherwise the peak so far stays
                Path(f"/proc/{pid}/clear_refs").write_text("5")  # VmHWM starts afresh
        self.wrote0 = {pid: written_bytes(pid) for pid in self.workers}
        self.began = time.perf_counter()

    def done(self, what: str, length: int, via: str = "through nginx") -> Figures:
        """The figures since the watch began."""
        took = time.perf_counter() - self.began
        grown = max(status_kb(pid, "VmHWM") - self.rss0[pid] for pid in self.workers) / 1024
        wrote = sum(written_bytes(pid) - self.wrote0[pid] for pid in self.workers)
        return Figures(what, length, took, grown, wrote, via)


async def transfer(
    nginx: Nginx, method: str, path: str, *, straight: str | None = None, **kwargs: Any
) -> tuple[int, bytes, int]:
    """An upload (``data``, ``headers``) or a download through nginx (or ``straight`` to that base URL):
    status, body (uploads), bytes read."""
    timeout = aiohttp.ClientTimeout(total=None, sock_read=120)
    count = 0
    body = b""
    ssl_option: ssl.SSLContext | bool = True if straight else trusting(nginx.layout)
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_option)) as http,
        http.request(method, (straight or nginx.url) + path, timeout=timeout, **kwargs) as resp,
    ):
        sock = resp.connection.transport.get_extra_info("socket") if resp.connection else None
        if method == "GET":
            async for data in resp.content.iter_chunked(1 << 20):
                count += len(data)
        else:
            body = await resp.read()
    await closed(sock)
    return resp.status, body, count


@dataclass(frozen=True)
class RoundTrip:
    """A VM imported through nginx, then exported through it."""

    vm: dict[str, Any]
    disk_sizes: list[int]
    up: Figures
    down: Figures


async def vm_round_trip(
    api: Api, nginx: Nginx, sr_id: str, size: int, name: str, straight: str | None = None
) -> RoundTrip:
    """Import a VM with a ``size`` disk full of data through nginx (the API's $sendTo, streamed, a
    Content-Length given), wait until the server sees it, then export it through nginx ($getFrom).
    With ``straight`` (the server's own URL), the same without nginx, for comparison."""
    via = "straight to the server" if straight else "through nginx"

    ova = xva_lib.vm_ova(name, size=size)
    vdi = next(o["id"] for o in ova["objects"] if o["class"] == "VDI")
    writer = xva_lib.XvaWriter(ova, {vdi: FilledDisk(size)})
    length = sum(len(block) for block in writer)  # the stream is made twice: once to know its length
    sent = await api.call("vm.import", {"sr": sr_id})
    watch = Watch(nginx)
    headers = {"Content-Length": str(length), "Content-Type": "application/octet-stream"}
    status, body, _ = await transfer(
        nginx, "PUT", sent["$sendTo"], straight=straight, data=writer.aiter(), headers=headers
    )
    up = watch.done("VM import", length, via)
    if status != 200:
        raise AssertionError(f"the import {via} answered {status}: {body[:500]!r}")
    vm = await wait_object(api, json.loads(body)["result"])
    vbds = [await wait_object(api, d) for d in vm["$VBDs"]]
    sizes = [(await wait_object(api, d["VDI"]))["size"] for d in vbds if d.get("VDI")]
    got = await api.call("vm.export", {"vm": vm["id"]})
    watch = Watch(nginx)
    status, _, count = await transfer(nginx, "GET", got["$getFrom"], straight=straight)
    down = watch.done("VM export", count, via)
    if status != 200:
        raise AssertionError(f"the export {via} answered {status}")
    return RoundTrip(vm, sizes, up, down)


def served_fingerprint(port: int, host: str = "127.0.0.1") -> str:
    """The SHA-256 fingerprint of the certificate a new TLS connection to ``host:port`` gets, as CertInfo
    writes it."""
    with (
        socket.create_connection((host, port), timeout=10) as sock,
        ssl._create_unverified_context().wrap_socket(sock) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).digest().hex(":").upper()
