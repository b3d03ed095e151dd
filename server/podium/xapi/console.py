"""A VM's console on its host: XAPI's ``CONNECT /console`` with the session, then the raw RFB stream.

The console's ``location`` (``https://<host>/console?uuid=…``) names the host the VM runs on; the
connection follows the pool's certificate policy (verified, pinned fingerprint, or allowed unverified)
and sends the session as a cookie, as XenCenter and Xen Orchestra do. What follows the ``200`` is the
VM's RFB server, untouched.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import urllib.parse
from dataclasses import dataclass

import aiohttp

from .client import XapiClient
from .errors import ProtocolError, TlsError, Unreachable, XapiError

_HEADER_LIMIT = 16 << 10


@dataclass
class ConsoleStream:
    """An open console: read and write RFB bytes."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def close(self) -> None:
        """Close the connection to the host."""
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass


async def console_location(client: XapiClient, vm_ref: str) -> str:
    """The location of a VM's RFB console, or XapiError when it has none (not running)."""
    for ref in await client.call("VM.get_consoles", vm_ref):
        record = await client.call("console.get_record", ref)
        if record.get("protocol") == "rfb" and record.get("location"):
            return str(record["location"])
    raise XapiError("the VM has no graphical console: is it running?")


async def open_console(client: XapiClient, location: str, timeout: float = 15.0) -> ConsoleStream:
    """CONNECT to a console location with the client's session."""
    url = urllib.parse.urlsplit(location)
    if url.scheme not in ("http", "https") or not url.hostname:
        raise ProtocolError(f"unexpected console location {location!r}")
    https = url.scheme == "https"
    port = url.port or (443 if https else 80)
    context = _context(client) if https else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(url.hostname, port, ssl=context, limit=1 << 20), timeout
        )
    except (OSError, TimeoutError) as e:
        raise Unreachable(f"cannot reach the console on {url.hostname}:{port}: {e}") from e
    stream = ConsoleStream(reader, writer)
    try:
        if https:
            _check_pin(client, writer)
        if client.session is None:
            await client.connect()
        target = url.path + ("?" + url.query if url.query else "")
        writer.write(
            f"CONNECT {target} HTTP/1.0\r\nHost: {url.hostname}\r\nCookie: session_id={client.session}\r\n\r\n".encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    except asyncio.LimitOverrunError as e:
        await stream.close()
        raise ProtocolError("the console answered with an oversized header") from e
    except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
        await stream.close()
        raise Unreachable(f"the console on {url.hostname} did not answer: {e}") from e
    except BaseException:
        await stream.close()
        raise
    status = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status.split()
    if len(parts) < 2 or parts[1] != "200":
        await stream.close()
        raise XapiError(f"the host refused the console: {status}")
    return stream


def _context(client: XapiClient) -> ssl.SSLContext:
    option = client.ssl_policy
    if isinstance(option, ssl.SSLContext):
        return option
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # allowed unverified, or pinned: the pin is checked after the handshake
    return ctx


def _check_pin(client: XapiClient, writer: asyncio.StreamWriter) -> None:
    option = client.ssl_policy
    if not isinstance(option, aiohttp.Fingerprint):
        return
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    got = hashlib.sha256(der).digest()
    if got != option.fingerprint:
        writer.close()
        raise TlsError(
            "the console's host presented another certificate than the pinned one", got.hex().upper()
        )
