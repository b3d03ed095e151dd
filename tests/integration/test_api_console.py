"""The console proxy: a real VNC client (asyncvnc) through Podium's WebSocket to the VM's console."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import asyncvnc
import pytest

from xapisim.screen import BLUE, WHITE
from xapisim.terminal import NAME_COL, STATUS_ROW, TOP, banner

from ..harness.screens import shows, wait_for_screen
from ..harness.serverproc import Api, admin_on
from ..harness.simproc import (
    Sim,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(tmp_path, still_sim: Sim) -> AsyncIterator[Api]:
    async with admin_on(tmp_path / "data", still_sim) as api:
        yield api


async def vm_id(api: Api, name: str) -> str:
    found = await api.call("xo.getAllObjects", {"filter": {"type": "VM", "name_label": name}})
    return next(iter(found))


@asynccontextmanager
async def bridge(url: str, token: str | None) -> AsyncIterator[tuple[int, list[aiohttp.WSMessage]]]:
    """A local TCP port whose connections are carried over the proxy's WebSocket (websockify's way round).

    Yields the port and the list of close frames received, to read the close code.
    """
    closes: list[aiohttp.WSMessage] = []
    cookies = {"authenticationToken": token} if token else {}
    http = aiohttp.ClientSession(cookies=cookies)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            ws = await http.ws_connect(url, protocols=("binary",))
        except aiohttp.WSServerHandshakeError:
            writer.close()
            return

        async def down() -> None:
            async for msg in ws:
                if msg.type == aiohttp.WSMsgType.BINARY:
                    writer.write(msg.data)
                    await writer.drain()
            closes.append(aiohttp.WSMessage(aiohttp.WSMsgType.CLOSE, ws.close_code, None))
            writer.close()

        async def up() -> None:
            while data := await reader.read(1 << 16):
                await ws.send_bytes(data)
            await ws.close()

        await asyncio.gather(down(), up(), return_exceptions=True)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], closes
    finally:
        server.close()
        await http.close()


@asynccontextmanager
async def vnc(port: int) -> AsyncIterator[asyncvnc.Client]:
    connection = asyncvnc.connect("127.0.0.1", port)
    client = await connection.__aenter__()
    try:
        yield client
    finally:
        with contextlib.suppress(ConnectionError):
            await connection.__aexit__(None, None, None)


async def ws_status(url: str, token: str | None, origin: str | None = None) -> int:
    cookies = {"authenticationToken": token} if token else {}
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession(cookies=cookies) as http:
        try:
            async with http.ws_connect(url, protocols=("binary",), headers=headers):
                return 101
        except aiohttp.WSServerHandshakeError as e:
            return e.status


async def test_console_through_the_proxy_shows_the_vm_and_takes_keys(api):
    vm = await vm_id(api, "23local")
    await api.call("vm.restart", {"id": vm, "force": True})  # a fresh screen
    token = await api.call("token.create", {})
    url = api.server.url.replace("http", "ws", 1) + f"/api/consoles/{vm}"
    async with bridge(url, token) as (port, _), vnc(port) as client:
        assert client.video.name == "23local"
        screen = await client.screenshot()
        assert shows(screen, STATUS_ROW, NAME_COL, "23local", WHITE, BLUE)
        lines = banner("23local", vm, "dt23")
        client.keyboard.write("root")
        await wait_for_screen(client, lambda sc: shows(sc, TOP + len(lines), 0, "23local login: root"))
    for _ in range(50):  # the audit log is written in batches
        records = [r for r in await api.call("audit.getRecords", {"limit": 50}) if r["method"] == "console"]
        if len(records) >= 2:
            break
        await asyncio.sleep(0.1)
    assert {r["outcome"] for r in records} >= {"opened", "closed by the client"}
    assert all(r["params"] == {"id": vm} and r["user"] == "admin@podium.test" for r in records)


async def test_console_refused_without_token_or_operate_right(api):
    vm = await vm_id(api, "23local")
    other = await vm_id(api, "16shared")
    base = api.server.url.replace("http", "ws", 1) + "/api/consoles/"
    assert await ws_status(base + vm, None) == 401
    assert await ws_status(base + vm, "not-a-token") == 401
    user = await api.call("user.create", {"email": "viewer@podium.test", "password": "a long passphrase 1"})
    await api.call("acl.add", {"subject": user, "object": vm, "action": "viewer"})
    await api.call("acl.add", {"subject": user, "object": other, "action": "operator"})
    async with Api(api.server.url) as viewer:
        await viewer.sign_in("viewer@podium.test", "a long passphrase 1")
        token = await viewer.call("token.create", {})
    assert await ws_status(base + vm, token) == 403  # sees it, may not operate it
    unseen = next(
        i for i in await api.call("xo.getAllObjects", {"filter": {"type": "VM"}}) if i not in (vm, other)
    )
    assert await ws_status(base + unseen, token) == 404  # not in the user's view: as if it did not exist
    assert await ws_status(base + other, token) == 101  # an operator may


async def test_console_closes_with_4000_when_the_vm_reboots_and_opens_again(api):
    vm = await vm_id(api, "23local")
    token = await api.call("token.create", {})
    url = api.server.url.replace("http", "ws", 1) + f"/api/consoles/{vm}"
    async with bridge(url, token) as (port, closes):
        async with vnc(port) as client:
            await client.screenshot()
            await api.call("vm.restart", {"id": vm, "force": True})
            for _ in range(100):
                if closes:
                    break
                await asyncio.sleep(0.05)
        assert closes and closes[0].data == 4000
        async with vnc(port) as client:  # a new connection reaches the new console
            assert client.video.name == "23local"
            await client.screenshot()


async def test_console_refuses_pages_of_another_origin(api):
    """A cookie goes along with any page's request: only Podium's own pages may open a console."""
    vm = await vm_id(api, "23local")
    token = await api.call("token.create", {})
    url = api.server.url.replace("http", "ws", 1) + f"/api/consoles/{vm}"
    assert await ws_status(url, token, origin="https://evil.example") == 403
    assert await ws_status(url, token, origin=api.server.url) == 101
