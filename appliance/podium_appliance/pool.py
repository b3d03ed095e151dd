"""The first pool master: its certificate's fingerprint, shown for a person to compare, then a real login.

This uses Podium's own XAPI client library (the same code the server will use for this pool); it does not
talk to the Podium server, which is not running yet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from podium.xapi import (
    AuthenticationFailed,
    Endpoint,
    TlsError,
    Unreachable,
    XapiClient,
    XapiError,
    peer_fingerprint,
)

from .errors import ApplianceError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PoolCheck:
    """A pool master that accepted the credentials."""

    host: str  # as typed, normalised: what server.add receives
    master: str  # where the master really is (differs when a member's address was given)
    pool_name: str
    fingerprint: str  # colon-separated SHA-256 of the master's certificate


def pretty(fingerprint: str) -> str:
    """``AB:CD:…`` from a hexadecimal digest with or without colons."""
    return bytes.fromhex(fingerprint.replace(":", "")).hex(":").upper()


def endpoint(host: str) -> Endpoint:
    """The address a person typed (``10.0.0.1``, ``host:8443``, ``https://…``), or a clear error."""
    try:
        found = Endpoint.parse(host)
    except ValueError as e:
        raise ApplianceError(f"pool master: {e}") from None
    if found.scheme != "https":
        raise ApplianceError(
            "pool master: use HTTPS (the pool's password must not cross the network in clear)"
        )
    return found


async def fingerprint(host: str) -> str:
    """The fingerprint of the certificate the host presents (not verified: a person compares it)."""
    where = endpoint(host)
    try:
        return pretty(await peer_fingerprint(where, timeout=10))
    except Unreachable:
        raise ApplianceError(
            f"pool master: cannot reach {where.host} on port {where.port}; check the address and that "
            "the appliance's network reaches the pool's management network"
        ) from None


async def check(host: str, username: str, password: str, confirmed_fingerprint: str) -> PoolCheck:
    """Log in with the certificate pinned to the fingerprint the person confirmed, and log out."""
    client = XapiClient(host, username, password, fingerprint=confirmed_fingerprint, call_timeout=20)
    try:
        await client.connect()
        pools = await client.call("pool.get_all")
        name = await client.call("pool.get_name_label", pools[0]) if pools else ""
        master = f"{client.master.host}:{client.master.port}"
        log.info("pool master %s: login accepted (pool %r)", master, name)
        return PoolCheck(host.strip(), master, str(name), pretty(confirmed_fingerprint))
    except AuthenticationFailed:
        raise ApplianceError("pool master: the user name or password was refused by the pool") from None
    except TlsError:
        raise ApplianceError(
            "pool master: the certificate changed since its fingerprint was shown; check it again"
        ) from None
    except Unreachable as e:
        raise ApplianceError(f"pool master: {e}") from None
    except XapiError as e:
        raise ApplianceError(f"pool master: {e}") from None
    finally:
        await client.close()
