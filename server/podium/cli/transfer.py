"""The files behind ``{$getFrom: path}`` and ``{$sendTo: path}`` results, streamed with a progress bar.

A download goes to a temporary file beside its destination and takes the destination's name only once
complete, so a failed or interrupted download leaves nothing behind and never clobbers an older file.
An upload reads the file as it sends it and says how long it is (Content-Length) when it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import sys
import tempfile
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import aiohttp
from tqdm import tqdm

from .errors import CliError, ConnectError, ExitStatus, UsageError
from .rpc import ApiConnection, rpc_error

CHUNK = 1 << 20


def check_target(target: str) -> None:
    """Refuse at once an ``@=`` path that can be neither read nor written (its directory is missing)."""
    if target == "-":
        return
    path = Path(target)
    if not path.exists() and not (path.parent if not target.endswith("/") else path).is_dir():
        raise UsageError(f"no such file or directory: {target}")


@contextlib.contextmanager
def progress(total: int | None, label: str) -> Iterator[tqdm[Any]]:
    """A progress bar with rate and ETA on a terminal (stderr); silent otherwise."""
    with tqdm(
        total=total,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        file=sys.stderr,
        disable=not sys.stderr.isatty(),
        mininterval=0.2,
        dynamic_ncols=True,
    ) as bar:
        yield bar


class _Output:
    """Where a download goes: stdout, a device or FIFO as it is, or a regular file completed by a rename."""

    def __init__(self, target: str, name: str) -> None:
        self.final: Path | None = None
        self.tmp: Path | None = None
        if target == "-":
            if sys.stdout.isatty():
                raise UsageError("not writing a download to the terminal: redirect it (> FILE) or use @=FILE")
            self.file: IO[bytes] = sys.stdout.buffer
            self.shown = "standard output"
            return
        path = Path(target)
        if target.endswith("/") or path.is_dir():
            if not name:
                raise UsageError(f"{target} is a directory and the download has no file name: name a file")
            path = path / name
        self.shown = str(path)
        path = Path(os.path.realpath(path))  # a link is followed, not replaced
        try:
            if path.exists() and not path.is_file():  # /dev/null, a FIFO: write into it
                self.file = path.open("wb")
                return
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
        except OSError as e:
            raise UsageError(f"cannot write {self.shown}: {e.strerror}") from e
        if path.exists():
            mode = path.stat().st_mode & 0o7777  # a replaced file keeps its mode
        else:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        self.file = os.fdopen(fd, "wb")
        self.final, self.tmp = path, Path(tmp)

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except BrokenPipeError:
            raise CliError("", ExitStatus.PIPE) from None
        except OSError as e:
            raise CliError(f"cannot write {self.shown}: {e.strerror}") from e

    def commit(self) -> None:
        try:
            self.file.flush()
            if self.final is not None and self.tmp is not None:
                os.fsync(self.file.fileno())
                self.file.close()
                os.replace(self.tmp, self.final)
                self.tmp = None
        except BrokenPipeError:
            raise CliError("", ExitStatus.PIPE) from None
        except OSError as e:
            raise CliError(f"cannot write {self.shown}: {e.strerror}") from e

    def abort(self) -> None:
        if self.tmp is not None:
            with contextlib.suppress(OSError):
                self.file.close()
            self.tmp.unlink(missing_ok=True)


def _answer(status: int, body: bytes) -> Any:
    """What the server answered after a transfer: the JSON-RPC envelope's result, or its error raised."""
    try:
        data = json.loads(body) if body else None
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), dict):
        raise rpc_error(data["error"])
    if status >= 400:
        text = body.decode(errors="replace").strip()[:500]
        raise CliError(f"the server answered HTTP {status}: {text or 'no details'}")
    if isinstance(data, dict) and "result" in data:
        return data["result"]
    return data if data is not None else body.decode(errors="replace")


async def download(conn: ApiConnection, path: str, target: str) -> str:
    """Fetch ``path`` into ``target`` (``-`` for stdout); where it went."""
    url = conn.http_url(path)
    name = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path.rsplit("/", 1)[-1])).name
    name = name if "." in name.strip(".") else ""  # a file name the server gave, not the token, not ..
    assert conn.http is not None
    output: _Output | None = None
    written = 0
    try:
        async with conn.http.get(url, ssl=conn.ssl()) as response:
            if response.status != 200:
                _answer(response.status, await response.read())
            output = _Output(target, name)
            with progress(response.content_length, name or "download") as bar:
                async for data in response.content.iter_chunked(CHUNK):
                    output.write(data)
                    written += len(data)
                    bar.update(len(data))
            if response.content_length is not None and written != response.content_length:
                raise aiohttp.ClientPayloadError("the stream ended early")
            output.commit()
            return output.shown
    except aiohttp.ClientPayloadError as e:
        raise ConnectError(
            f"the download was cut after {written:,} bytes ({e}): the server or the pool failed midway;"
            " nothing was kept"
        ) from e
    except (aiohttp.ClientError, OSError) as e:
        if isinstance(e, BrokenPipeError):
            raise CliError("", ExitStatus.PIPE) from None
        raise ConnectError(f"the download from {conn.server} failed after {written:,} bytes: {e}") from e
    finally:
        if output is not None:
            output.abort()


def _open_source(source: str) -> tuple[IO[bytes], int | None, str]:
    if source == "-":
        if sys.stdin.isatty():
            raise UsageError("not reading an upload from the terminal: pipe a file in (< FILE) or use @=FILE")
        stdin = sys.stdin.buffer
        info = os.fstat(stdin.fileno())
        length = info.st_size - stdin.tell() if stat.S_ISREG(info.st_mode) else None
        return stdin, length, "stdin"
    try:
        f = open(source, "rb")  # noqa: SIM115  (closed by upload)
    except FileNotFoundError:
        raise UsageError(f"no such file: {source} (the file to upload, named by @=)") from None
    except IsADirectoryError:
        raise UsageError(f"{source} is a directory: name the file to upload") from None
    except OSError as e:
        raise UsageError(f"cannot read {source}: {e.strerror}") from e
    info = os.fstat(f.fileno())
    return f, (info.st_size if stat.S_ISREG(info.st_mode) else None), Path(source).name


async def upload(conn: ApiConnection, path: str, source: str) -> Any:
    """Send ``source`` (``-`` for stdin) to ``path``; what the server answered."""
    file, length, label = _open_source(source)
    loop = asyncio.get_running_loop()
    read = getattr(file, "read1", file.read)
    sent = 0

    async def body(bar: tqdm[Any]) -> AsyncIterator[bytes]:
        nonlocal sent
        while data := await loop.run_in_executor(None, read, CHUNK):
            sent += len(data)
            bar.update(len(data))
            yield data

    headers = {"Content-Type": "application/octet-stream"}
    if length is not None:
        headers["Content-Length"] = str(length)
    assert conn.http is not None
    try:
        with progress(length, label) as bar:
            async with conn.http.post(
                conn.http_url(path), data=body(bar), headers=headers, ssl=conn.ssl()
            ) as response:
                return _answer(response.status, await response.read())
    except (aiohttp.ClientError, OSError) as e:
        raise ConnectError(f"the upload to {conn.server} failed after {sent:,} bytes: {e}") from e
    finally:
        if file is not sys.stdin.buffer:
            file.close()
