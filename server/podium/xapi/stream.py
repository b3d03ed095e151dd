"""XAPI's HTTP transfers from the client side: ``GET /export`` and friends, ``PUT /import`` and friends.

Each transfer runs under a task the client creates (``task.create``) and passes as ``task_id``, so the
pool reports progress and the outcome on it, and anyone may cancel it; the task is destroyed when the
transfer is over. Downloads are read as the consumer asks (aiohttp pauses the socket when its small
buffer is full), so a disk of any size crosses with bounded memory. Uploads send ``Content-Length`` when
the size is known; otherwise, as Xen Orchestra does, a length of 1 PiB: xapi does not read chunked bodies
and stops reading once every disk arrived, and the task says how it went. A source that fails midway (the
uploader went away, the pool exported from died) closes the connection and cancels the pool's task; a
source that ends before a length the pool was never told tells the pool it ended, so that no import
waits forever for bytes that will not come.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from .client import XapiClient
from .errors import ProtocolError, Unreachable, XapiError, XapiFailure
from .task import TaskHandle, create_task

log = logging.getLogger(__name__)

UNKNOWN_LENGTH = 1 << 50  # xapi wants a length; it stops reading when the stream's content ends


async def pieces(stream: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """A body as the socket gave it, piece by piece: ``iter_any()`` joins what is buffered (a copy of every
    byte, an eighth of a relay's CPU), ``iter_chunked()`` too."""
    async for data, _ in stream.iter_chunks():
        yield data


@dataclass
class Download:
    """An open download from a pool: its body as chunks, and its task."""

    task: TaskHandle
    response: aiohttp.ClientResponse
    expected: int | None = None

    @property
    def length(self) -> int | None:
        """The body's length: as the pool said it, else as the caller knew it (a raw disk's size), else None.

        xapi says none: its downloads end when it closes the connection.
        """
        return self.response.content_length if self.response.content_length is not None else self.expected

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; a cut connection raises :class:`Unreachable`.

        A body xapi ends by closing looks whole when cut: where the length is known, a short one raises
        here; otherwise only the task (:meth:`TaskHandle.result`) can tell, and every consumer asks it.
        """
        got, length = 0, self.length
        try:
            async for data in pieces(self.response.content):
                got += len(data)
                if length is not None and got > length:  # before passing it on: a relay told the length
                    raise Unreachable(
                        f"the download from {self.task.client.master} is longer than its {length:,} bytes"
                    )
                yield data
        except (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, ConnectionError) as e:
            raise Unreachable(f"the download from {self.task.client.master} was cut: {e}") from e
        if length is not None and got != length:
            raise Unreachable(
                f"the download from {self.task.client.master} ended after {got:,} of {length:,} bytes"
            )

    async def close(self) -> None:
        """Release the connection."""
        self.response.close()


async def download(
    client: XapiClient, path: str, query: dict[str, str], label: str, length: int | None = None
) -> Download:
    """Open ``GET path`` on the pool under a new task; a refusal raises the task's failure.

    ``length`` is the body's size when the caller knows it (a raw disk's): the stream is checked against it.
    """
    task = await create_task(client, label)
    try:
        response = await client.http_request("GET", path, {**query, "task_id": task.ref})
    except BaseException:
        await task.destroy()
        raise
    if response.status != 200:
        text = (await response.read())[:300].decode("utf-8", "replace")
        response.close()
        await _raise_refusal(task, path, response.status, text)
    return Download(task, response, length)


async def upload(
    client: XapiClient,
    path: str,
    query: dict[str, str],
    body: AsyncIterable[bytes],
    length: int | None,
    label: str,
    task: TaskHandle | None = None,
) -> str:
    """``PUT path`` with ``body`` under a task; returns the task's result once the pool is done."""
    task = task or await create_task(client, label)
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Length": str(length if length is not None else UNKNOWN_LENGTH),
    }
    source = _Watched(body)
    try:
        response = await client.http_request(
            "PUT", path, {**query, "task_id": task.ref}, data=source.chunks(), headers=headers
        )
        try:
            if response.status != 200:
                text = (await response.read())[:300].decode("utf-8", "replace")
                await _raise_refusal(task, path, response.status, text)
            return await _outcome(task, response, source, length is None)
        finally:
            response.close()
    except XapiFailure:
        raise
    except (aiohttp.ClientError, ConnectionError, Unreachable) as e:
        if source.failure is not None:
            await task.cancel()
            raise SourceFailed(
                f"the upload's source failed after {source.sent:,} bytes: {source.failure}"
            ) from e
        if isinstance(e, Unreachable):
            raise
        # The pool may close once it has what it needs: then the task tells; else the pool is gone.
        try:
            return await asyncio.wait_for(task.result(), 30)
        except (TimeoutError, XapiError):
            raise Unreachable(f"the upload to {client.master} was cut: {e}") from e
    finally:
        await task.destroy()


class SourceFailed(XapiError):
    """What an upload sent failed midway (its client went away, the pool it came from died)."""


class _Watched:
    """An upload's body, noting how it ends: ``ended`` resolves to None at its end, or to its failure."""

    def __init__(self, body: AsyncIterable[bytes]) -> None:
        self.body = body
        self.ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.sent = 0

    @property
    def failure(self) -> BaseException | None:
        return self.ended.result() if self.ended.done() else None

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            async for data in self.body:
                self.sent += len(data)
                yield data
        except (GeneratorExit, asyncio.CancelledError):
            raise  # the HTTP client stopped asking (the pool closed the connection): not the source's fault
        except Exception as e:
            if not self.ended.done():
                self.ended.set_result(e)
            raise
        if not self.ended.done():
            self.ended.set_result(None)


END_GRACE = 30.0  # seconds a pool may take to finish after the last byte, when its end cannot be signalled


async def _outcome(
    task: TaskHandle, response: aiohttp.ClientResponse, source: _Watched, unknown: bool
) -> str:
    """The task's result, watching the source: a failed source cancels the task, an early end is told."""
    result = asyncio.ensure_future(task.result())
    waiting: set[asyncio.Future[Any]] = {result, source.ended}
    try:
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if result in done:
                return result.result()
            if source.ended in done:
                waiting.discard(source.ended)
                if source.failure is not None:
                    return await _source_failed(task, response, source, result)
                if unknown:  # the pool was told 1 PiB: tell it the data ended, lest it wait for more
                    transport = response.connection.transport if response.connection else None
                    if transport is not None and transport.can_write_eof():
                        transport.write_eof()
                    else:  # TLS cannot half-close: give the pool time to finish, then close
                        waiting.add(asyncio.ensure_future(asyncio.sleep(END_GRACE)))
                continue
            for timer in done - {result}:
                waiting.discard(timer)
            response.close()
    finally:
        for waited in waiting - {source.ended}:
            waited.cancel()


async def _source_failed(
    task: TaskHandle, response: aiohttp.ClientResponse, source: _Watched, result: asyncio.Future[str]
) -> str:
    """Stop the pool's task of an upload whose source failed; its result if it had finished already."""
    log.info("an upload's source failed after %d bytes; cancelling the pool's task", source.sent)
    response.close()
    await task.cancel()
    with contextlib.suppress(XapiError, TimeoutError):
        return await asyncio.wait_for(asyncio.shield(result), 5)  # done before the cancel came: keep it
    raise SourceFailed(f"the upload's source failed after {source.sent:,} bytes: {source.failure}")


async def _raise_refusal(task: TaskHandle, path: str, status: int, text: str) -> None:
    """The pool answered a transfer with an error status: raise the task's failure, or the status."""
    failure = await task.failure(5)
    await task.destroy()
    if failure is not None:
        raise failure
    raise ProtocolError(f"{path} answered HTTP {status}: {text.strip() or 'no detail'}")
