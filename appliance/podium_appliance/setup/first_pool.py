"""The wizard's check of the first pool: its master found, its certificate's fingerprint shown for a person to
compare, then a real login pinned to that fingerprint.

A person may type the address of any host of the pool, but Podium always talks to the master, and in a
pool each host has its own certificate: a member's fingerprint pins nothing useful. So the address typed is
first asked (without credentials, see :func:`podium.xapi.ask_master`) whether it is a member; if it is, the
fingerprint shown, confirmed and pinned is the master's it names, and the page says so.

This uses Podium's own XAPI client library (the same code the server will use for this pool); it does not
talk to the Podium server, which is not running yet.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass

from podium.net import Endpoint, Unreachable, format_fingerprint, peer_fingerprint
from podium.xapi import AuthenticationFailed, ProtocolError, TlsError, XapiClient, XapiError, ask_master

from ..errors import ApplianceError

log = logging.getLogger(__name__)

#: How long a host may take to say whether it is a member: a member says so at once, before it looks at
#: the (empty) credentials; a master takes xapi's failed-login delay to refuse them, not waited for longer.
ASK_SECONDS = 6.0


@dataclass(frozen=True)
class Master:
    """The pool's master as found from the address a person typed, and its certificate's fingerprint."""

    address: str  # where the master is, as Podium's server is given it: ``host`` or ``host:port``
    fingerprint: str  # colon-separated SHA-256 of the master's certificate
    member: str = ""  # the address typed, when it was a member's (the master was named by it)


@dataclass(frozen=True)
class PoolCheck:
    """A pool master that accepted the credentials."""

    master: str  # where the master really is, as ``Master.address`` (moves with a pinned redirect)
    pool_name: str
    fingerprint: str  # colon-separated SHA-256 of the master's certificate


class StaleFingerprint(ApplianceError):
    """The fingerprint shown no longer applies (the certificate or the master changed): show it again."""


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


def address(where: Endpoint) -> str:
    """An endpoint as a person reads it and ``Endpoint.parse`` reads it back (HTTPS; 443 left out)."""
    host = where.host
    try:
        if ipaddress.ip_address(host).version == 6:
            host = f"[{host}]"
    except ValueError:
        pass
    return host if where.port == 443 else f"{host}:{where.port}"


async def find_master(host: str) -> Master:
    """The master of the pool ``host`` belongs to, and its certificate's fingerprint (not verified: a
    person compares it). Nothing secret is sent to any host."""
    where = endpoint(host)
    try:
        master = await ask_master(where, timeout=ASK_SECONDS)
    except Unreachable:
        raise _unreachable(where) from None
    except ProtocolError:
        raise ApplianceError(
            f"pool master: {address(where)} answers, but not as an XCP-ng or XenServer host does; check the "
            "address and port"
        ) from None
    except XapiError as e:  # TLS that does not even start
        raise ApplianceError(f"pool master: {e}") from None
    target = master or where
    try:
        fingerprint = format_fingerprint(await peer_fingerprint(target, timeout=10))
    except Unreachable:
        raise _unreachable(target, member=address(where) if master else "") from None
    if master is not None:
        log.info("pool: %s is a member; its master is %s", address(where), address(master))
    return Master(address(target), fingerprint, address(where) if master else "")


def _unreachable(where: Endpoint, member: str = "") -> ApplianceError:
    named = f" (named as the pool's master by {member})" if member else ""
    return ApplianceError(
        f"pool master: cannot reach {where.host}{named} on port {where.port}; check the address and that "
        "the appliance's network reaches the pool's management network"
    )


async def check(master: str, username: str, password: str, confirmed_fingerprint: str) -> PoolCheck:
    """Log in on ``master`` with its certificate pinned to the fingerprint the person confirmed, and out."""
    where = endpoint(master)
    client = XapiClient(master, username, password, fingerprint=confirmed_fingerprint, call_timeout=20)
    try:
        await client.connect()
        pools = await client.call("pool.get_all")
        name = await client.call("pool.get_name_label", pools[0]) if pools else ""
        found = address(client.master)
        log.info("pool master %s: login accepted (pool %r)", found, name)
        return PoolCheck(found, str(name), format_fingerprint(confirmed_fingerprint))
    except AuthenticationFailed:
        raise ApplianceError("pool master: the user name or password was refused by the pool") from None
    except TlsError:
        # Pinned, the login failed on the certificate: either the master's changed, or the master moved
        # and the login was sent on (HOST_IS_SLAVE) to another host, with a certificate of its own.
        moved = await _moved(where)
        if moved is not None:
            raise StaleFingerprint(
                f"pool master: {master} is not the pool's master (any more): its master is {address(moved)}; "
                "show the master's certificate and check it"
            ) from None
        raise StaleFingerprint(
            "pool master: the certificate changed since its fingerprint was shown; check it again"
        ) from None
    except Unreachable as e:
        raise ApplianceError(f"pool master: {e}") from None
    except XapiError as e:
        raise ApplianceError(f"pool master: {e}") from None
    finally:
        await client.close()


async def _moved(where: Endpoint) -> Endpoint | None:
    try:
        return await ask_master(where, timeout=ASK_SECONDS)
    except XapiError:
        return None
