"""A pool's download read against xapi's framing (no length, the end is the close), over a real socket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import SimpleNamespace

import aiohttp
import pytest

from podium.xapi.errors import Unreachable
from podium.xapi.stream import Download
from podium.xapi.task import TaskHandle

HEAD = b"HTTP/1.1 200 OK\r\nConnection: close\r\ntask-id: OpaqueRef:t\r\nContent-Type: application/octet-stream\r\n\r\n"


async def xapi_like(body: bytes) -> tuple[asyncio.Server, str]:
    """A server answering every request as xapi's /export_raw_vdi does: the head, ``body``, then the close."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(HEAD + body)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/export_raw_vdi"


async def read(body: bytes, expected: int | None) -> tuple[bytes, BaseException | None]:
    """What a consumer of the download gets before its end or its error."""
    server, url = await xapi_like(body)
    got = bytearray()
    error: BaseException | None = None
    task = TaskHandle(SimpleNamespace(master="pool-master"), "OpaqueRef:t")  # type: ignore[arg-type]
    async with server, aiohttp.ClientSession() as http, http.get(url) as response:
        chunks: AsyncIterator[bytes] = Download(task, response, expected).chunks()
        try:
            async for data in chunks:
                got += data
        except Unreachable as e:
            error = e
    return bytes(got), error


BODY = bytes(range(256)) * 4096  # 1 MiB


async def test_a_body_of_the_told_length_passes_whole() -> None:
    assert await read(BODY, len(BODY)) == (BODY, None)


async def test_without_a_length_the_close_is_the_end() -> None:
    assert await read(BODY[:1000], None) == (BODY[:1000], None)  # only the pool's task can tell more


async def test_a_body_short_of_its_length_is_an_error_after_what_came() -> None:
    got, error = await read(BODY[:-1], len(BODY))
    assert got == BODY[:-1]
    assert error is not None and f"ended after {len(BODY) - 1:,} of {len(BODY):,} bytes" in str(error)


@pytest.mark.parametrize("extra", [1, 5000])
async def test_a_body_longer_than_its_length_never_passes_its_surplus(extra: int) -> None:
    """A relay that told its client the length would send exactly that many bytes, looking whole."""
    got, error = await read(BODY + bytes(extra), len(BODY))
    assert error is not None and "longer than its" in str(error)
    assert len(got) < len(BODY) + extra and len(got) <= len(BODY)
