"""Run the real Podium server process for tests, and talk to its API over WebSocket."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from .simproc import terminate

ADMIN_EMAIL = "admin@podium.test"
ADMIN_PASSWORD = "correct horse battery staple"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A running podium-server."""

    proc: subprocess.Popen[bytes]
    url: str
    data_dir: Path
    log_path: Path

    def log(self) -> str:
        """What the server has logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then wait; the exit status."""
        return terminate(self.proc)


def start_server(
    data_dir: Path,
    env: dict[str, str] | None = None,
    admin: bool = True,
    tls: tuple[Path, Path] | None = None,
    port: int | None = None,
) -> Server:
    """A podium-server on loopback (HTTPS with ``tls`` = (certificate, key)), answering its health check."""
    port = port or free_port()
    environ = {**os.environ, "PODIUM_LISTEN": f"127.0.0.1:{port}", "PODIUM_DATA_DIR": str(data_dir)}
    if admin:
        environ |= {"PODIUM_ADMIN_EMAIL": ADMIN_EMAIL, "PODIUM_ADMIN_PASSWORD": ADMIN_PASSWORD}
    if tls is not None:
        environ |= {"PODIUM_TLS_CERT": str(tls[0]), "PODIUM_TLS_KEY": str(tls[1])}
    environ |= env or {}
    unverified = ssl._create_unverified_context() if tls else None
    fd, log_name = tempfile.mkstemp(prefix="podium-", suffix=".log")
    with os.fdopen(fd, "w") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "podium"], stdout=log_file, stderr=log_file, env=environ
        )
    server = Server(proc, f"{'https' if tls else 'http'}://127.0.0.1:{port}", data_dir, Path(log_name))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"podium-server exited with {proc.returncode}: {server.log()}")
        try:
            with urllib.request.urlopen(server.url + "/api/health", timeout=1, context=unverified) as resp:
                if resp.status == 200:
                    return server
        except OSError:
            time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"podium-server did not answer: {server.log()}")


class ApiError(Exception):
    """An error answered by the API."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.code = error.get("code")
        self.data = error.get("data")


class Api:
    """A JSON-RPC WebSocket client of Podium's API (the protocol xo-lib speaks)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.server: Server | None = None  # set by admin_on
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.notifications: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def __aenter__(self) -> Api:
        self.http = aiohttp.ClientSession()
        self.ws = await self.http.ws_connect(
            self.url.replace("http", "ws", 1) + "/api/", max_msg_size=0
        )  # 10k VMs: > 4 MiB
        self.reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.reader.cancel()
        await self.ws.close()
        await self.http.close()

    async def _read(self) -> None:
        async for msg in self.ws:
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                await self.notifications.put(data)

    async def call(self, method: str, params: dict[str, Any] | None = None) -> Any:
        req_id = next(self.ids)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.pending[req_id] = fut
        await self.ws.send_str(
            json.dumps({"jsonrpc": "2.0", "id": req_id, "method": method, "params": params or {}})
        )
        reply = await asyncio.wait_for(fut, 30)
        if "error" in reply:
            raise ApiError(reply["error"])
        return reply["result"]

    async def sign_in(self, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> dict[str, Any]:
        return await self.call("session.signIn", {"email": email, "password": password})  # type: ignore[no-any-return]


async def connected(api: Api, sim: Any, pool: int = 0) -> str:
    """Add one of the simulator's pools through the API and wait until it is connected; returns the server id."""
    server_id = await api.call(
        "server.add", {"host": sim.master(pool).url, "username": sim.user, "password": sim.password}
    )
    for _ in range(300):
        (info,) = [s for s in await api.call("server.getAll") if s["id"] == server_id]
        if info["status"] == "connected":
            return str(server_id)
        await asyncio.sleep(0.05)
    raise AssertionError(f"server never connected: {info}")


@contextlib.asynccontextmanager
async def admin_on(data_dir: Path, sim: Any, pools: tuple[int, ...] = (0,)) -> AsyncIterator[Api]:
    """A server connected to the simulator's pools, and an admin signed in on its API (``api.server``)."""
    srv = start_server(data_dir)
    try:
        async with Api(srv.url) as api:
            await api.sign_in()
            for pool in pools:
                await connected(api, sim, pool)
            api.server = srv
            yield api
    finally:
        srv.stop()


async def obj(api: Api, id_: str) -> dict[str, Any] | None:
    """One object by id as the signed-in user sees it (None: missing or invisible)."""
    result: dict[str, Any] | None = (await api.call("xo.getAllObjects", {"filter": {"id": id_}})).get(id_)
    return result


async def until(api: Api, id_: str, check: Any, timeout: float = 20.0) -> dict[str, Any]:
    """The object once ``check(object)`` holds (the cache follows XAPI's events), within ``timeout``."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        o = await obj(api, id_)
        if o is not None and check(o):
            return o
        assert asyncio.get_running_loop().time() < deadline, f"{id_} never reached the expected state: {o}"
        await asyncio.sleep(0.05)


async def wait_object(api: Api, id_: str, timeout: float = 20.0) -> dict[str, Any]:
    """The object once the signed-in user sees it."""
    return await until(api, id_, lambda _o: True, timeout)


async def objects(api: Api, **filter_: Any) -> dict[str, dict[str, Any]]:
    return await api.call("xo.getAllObjects", {"filter": filter_})  # type: ignore[no-any-return]


async def pool_ids(api: Api) -> list[str]:
    pools = await objects(api, type="pool")
    return sorted(pools, key=lambda p: (pools[p]["name_label"] != "16And23" and pools[p]["name_label"]) or "")


async def disk_sr(api: Api, pool: str) -> dict[str, Any]:
    srs = await objects(api, type="SR", **{"$poolId": pool})
    return next(
        sr for _, sr in sorted(srs.items()) if sr["content_type"] != "iso" and sr["SR_type"] != "udev"
    )
