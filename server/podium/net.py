"""Addresses and certificates, as every part of Podium that opens a connection sees them.

:class:`Endpoint` (where a host answers), :func:`ssl_option` (a certificate policy as aiohttp's ``ssl``
argument: verified, pinned to a SHA-256 fingerprint, or not checked), :func:`peer_fingerprint` (the
certificate a host presents, read without trusting it) and :func:`format_fingerprint`. The XAPI client,
the CLI and the appliance's wizard all use these; none of them belongs to XAPI.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp

from .errors import PodiumError


class Unreachable(PodiumError):
    """No answer from an address: connection refused, DNS, reset, host down, or too slow to answer."""


@dataclass(frozen=True)
class Endpoint:
    """Where a host answers: scheme, address and port (an IPv6 address without brackets)."""

    scheme: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``10.0.0.1``, ``10.0.0.1:8080``, ``[fe80::1]:443``, ``https://host`` or ``http://127.0.0.5:8080``."""
        text = text.strip()
        if not text:
            raise ValueError("empty host address")
        if "://" not in text:
            text = "https://" + text
        parts = urlsplit(text)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"unsupported scheme {parts.scheme!r}: use http or https")
        if not parts.hostname:
            raise ValueError(f"no host name in {text!r}")
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as e:
            raise ValueError(f"bad port in {text!r}") from e
        return cls(parts.scheme, parts.hostname, port)

    def with_host(self, host: str) -> Endpoint:
        """The same scheme and port on another address (to follow HOST_IS_SLAVE)."""
        return Endpoint(self.scheme, host.strip("[]"), self.port)

    @property
    def url(self) -> str:
        """The base URL, with an IPv6 address in brackets."""
        host = self.host
        try:
            if ipaddress.ip_address(host).version == 6:
                host = f"[{host}]"
        except ValueError:
            pass
        return f"{self.scheme}://{host}:{self.port}"

    def __str__(self) -> str:
        return self.url


def ssl_option(
    allow_unauthorized: bool, fingerprint: str | None
) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
    """aiohttp's ``ssl`` argument for a server's certificate policy."""
    if fingerprint:
        digest = bytes.fromhex(fingerprint.replace(":", "").strip())
        if len(digest) != 32:
            raise ValueError("a certificate fingerprint is a SHA-256 digest: 64 hexadecimal digits")
        return aiohttp.Fingerprint(digest)
    if allow_unauthorized:
        return False
    return ssl.create_default_context()


async def peer_fingerprint(endpoint: Endpoint, timeout: float = 10.0) -> str:
    """The SHA-256 fingerprint of the certificate a host presents (fetched without verifying it)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(endpoint.host, endpoint.port, ssl=ctx), timeout
        )
    except (OSError, TimeoutError) as e:
        raise Unreachable(f"cannot reach {endpoint}: {e}") from e
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    finally:
        # Closed before returning, TLS's close_notify answered or not: a close left pending would outlive
        # the caller (a wizard's request, a test's event loop) with its socket still open.
        writer.close()
        try:
            await asyncio.wait_for(writer.wait_closed(), 2)
        except (OSError, TimeoutError):
            writer.transport.abort()
    return hashlib.sha256(der).hexdigest().upper()


def format_fingerprint(digest: str | bytes) -> str:
    """A SHA-256 digest as browsers and xapi show a fingerprint: ``AB:CD:…`` (from bytes, or from hexadecimal
    digits with or without colons)."""
    raw = digest if isinstance(digest, bytes) else bytes.fromhex(digest.replace(":", "").strip())
    return raw.hex(":").upper()
