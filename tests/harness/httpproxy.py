"""A forward HTTP proxy on loopback for tests: what a site's proxy does for plain-HTTP requests (the request
line in absolute form, forwarded in origin form to the host it names), recording each request it carried.
It refuses any target but loopback, so a test cannot reach out through it."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import threading
from urllib.parse import urlsplit

from .serverproc import free_port


class ForwardProxy:
    """``with ForwardProxy() as proxy:`` — ``proxy.url`` to configure, ``proxy.requests`` [(method, url)]."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[tuple[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", self.port), self._loop
        ).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 5)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, rest = head.partition(b"\r\n")
            method, target, version = line.decode("latin-1").split(" ", 2)
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname or not ipaddress.ip_address(url.hostname).is_loopback:
                writer.write(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                return
            self.requests.append((method, target))
            headers = [h for h in rest.split(b"\r\n") if h and not h.lower().startswith(b"proxy-")]
            headers = [h for h in headers if not h.lower().startswith(b"connection:")]
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
            up_writer.write(f"{method} {path} {version}\r\n".encode("latin-1"))
            up_writer.write(b"\r\n".join([*headers, b"Connection: close", b"", b""]))
            await up_writer.drain()
            body = asyncio.create_task(_pipe(reader, up_writer))  # a request body, if any
            await _pipe(up_reader, writer)  # the answer, until the origin closes
            body.cancel()
            up_writer.close()
        except (OSError, ValueError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while chunk := await reader.read(1 << 16):
        writer.write(chunk)
        await writer.drain()
