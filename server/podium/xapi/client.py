"""A session with one pool, always on its master.

``connect`` logs in and follows HOST_IS_SLAVE to the master it names (keeping scheme and port, an IPv6
address in brackets); a call that meets SESSION_INVALID logs in again and is retried once; ``close``
logs out. The client never talks to a member for anything but being told where the master is.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any, Protocol

import aiohttp

from ..net import Endpoint, ssl_option
from .errors import CallTimeout, ProtocolError, ReadOnly, TlsError, Unreachable, XapiError, XapiFailure
from .transport import Transport

log = logging.getLogger(__name__)

ORIGINATOR = "podium"
_READ_CLASSES = ("event.", "session.", "system.")
_TRANSFER_BUFFER = 1 << 20  # read ahead of a slow consumer: fewer pauses of the socket, fewer small reads
API_VERSION = "2.20"  # the newest XenAPI version this client knows; xapi accepts older clients too


def is_write(method: str) -> bool:
    """Whether a XAPI method may change anything: all but getters, events and sessions."""
    plain = method.removeprefix("Async.")
    if plain.startswith(_READ_CLASSES):
        return False
    name = plain.split(".", 1)[-1]
    return not name.startswith("get_")


class TaskWatch(Protocol):
    """Where the end of a pool's tasks is seen (the pool's cache, fed by its watcher)."""

    async def task_ended(self, ref: str, timeout: float) -> dict[str, Any]:
        """The task's record once its status is no longer pending. Raises :class:`Unreachable` when the
        pool's connection is lost while waiting, :class:`TimeoutError` after ``timeout`` seconds."""


class XapiClient:
    """Calls on a pool's master with a live session."""

    def __init__(
        self,
        host: str,
        username: str,
        password: str,
        *,
        allow_unauthorized: bool = False,
        fingerprint: str | None = None,
        concurrency: int = 20,
        call_timeout: float = 60.0,
        read_only: bool = False,
        http: aiohttp.ClientSession | None = None,
    ) -> None:
        self.read_only = read_only
        self.endpoint = Endpoint.parse(host)
        self.username = username
        self._password = password
        self._ssl = ssl_option(allow_unauthorized, fingerprint)
        self._limit = asyncio.Semaphore(concurrency)
        self._timeout = call_timeout
        self._own_http = http is None
        self._http = http
        self._transport: Transport | None = None
        self.session: str | None = None
        self.closed = False
        self._login_lock = asyncio.Lock()
        # Where this pool's tasks are seen to end (its cache, which its watcher keeps); see .task.
        self.tasks: TaskWatch | None = None

    def __repr__(self) -> str:
        return f"XapiClient({self.endpoint}, user={self.username!r})"  # never the password

    @property
    def master(self) -> Endpoint:
        """The endpoint the client is logged in on (the master, after any redirect)."""
        return self._transport.endpoint if self._transport else self.endpoint

    @property
    def ssl_policy(self) -> ssl.SSLContext | aiohttp.Fingerprint | bool:
        """How the pool's certificates are checked: a verifying context, a pinned fingerprint, or not."""
        return self._ssl

    @property
    def protocol(self) -> str | None:
        """``json`` or ``xml``: the wire format the master speaks."""
        return self._transport.protocol if self._transport else None

    def _make_transport(self, endpoint: Endpoint) -> Transport:
        if self._http is None:
            self._http = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=60), cookie_jar=aiohttp.DummyCookieJar()
            )
        return Transport(self._http, endpoint, self._ssl, self._limit, self._timeout)

    async def connect(self, endpoint: Endpoint | None = None, stale: str | None = None) -> str:
        """Log in on the master (following HOST_IS_SLAVE); returns the session.

        With ``stale``, a caller whose session expired: when another caller has logged in again meanwhile,
        that new session is used instead of logging in once more.
        """
        async with self._login_lock:
            if stale is not None and self.session is not None and self.session != stale:
                return self.session
            self._transport, self.session = await self._login(endpoint or self.master)
            return self.session

    async def locate_master(self, endpoint: Endpoint) -> tuple[Endpoint, str]:
        """Ask one host who the master is, and of which pool (logging in and out); the client is unchanged."""
        transport, session = await self._login(endpoint, timeout=10)
        try:
            pools = await transport.call("pool.get_all", [session], timeout=10)
            uuid = await transport.call("pool.get_uuid", [session, pools[0]], timeout=10)
        finally:
            try:
                await transport.call("session.logout", [session], timeout=5)
            except XapiError:
                pass
        return transport.endpoint, str(uuid)

    async def logout(self) -> None:
        """End the session (best effort, briefly); the client logs in again when next used."""
        if self.session is not None and self._transport is not None:
            try:
                await self._transport.call("session.logout", [self.session], timeout=5)
            except XapiError:
                pass
        self.session = None

    async def _login(self, target: Endpoint, timeout: float | None = None) -> tuple[Transport, str]:
        if self.closed:
            raise XapiError(f"the connection to {self.endpoint} is closed")
        for _ in range(3):
            transport = self._make_transport(target)
            try:
                session = await transport.call(
                    "session.login_with_password",
                    [self.username, self._password, API_VERSION, ORIGINATOR],
                    timeout=timeout,
                )
            except XapiFailure as e:
                if e.xapi_code == "HOST_IS_SLAVE" and e.params:
                    log.info("%s is a pool member; its master is %s", target, e.params[0])
                    target = target.with_host(e.params[0])
                    continue
                raise
            return transport, str(session)
        raise XapiError(f"{target}: too many HOST_IS_SLAVE redirects")

    async def call_event_from(self, classes: list[str], token: str, timeout: float) -> dict[str, Any]:
        """``event.from`` without the automatic re-login: SESSION_INVALID must reach the event loop."""
        if self.session is None or self._transport is None:
            await self.connect()
        assert self._transport is not None
        result: dict[str, Any] = await self._transport.call(
            "event.from", [self.session, classes, token, timeout], timeout=timeout + 15
        )
        return result

    async def call(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        """Call a method with the session; on SESSION_INVALID log in again and retry once."""
        if self.read_only and is_write(method):
            raise ReadOnly(f"{method} refused: the server {self.endpoint} is read-only")
        if self.session is None or self._transport is None:
            await self.connect()
        assert self._transport is not None
        session = self.session
        try:
            return await self._transport.call(method, [session, *args], timeout)
        except XapiFailure as e:
            if e.xapi_code != "SESSION_INVALID":
                raise
            log.info("session on %s expired; logging in again", self.master)
        session = await self.connect(stale=session)
        assert self._transport is not None
        return await self._transport.call(method, [session, *args], timeout)

    async def http_request(
        self,
        method: str,
        path: str,
        query: dict[str, str],
        *,
        data: Any = None,
        headers: dict[str, str] | None = None,
        host: str | None = None,
    ) -> aiohttp.ClientResponse:
        """An HTTP request to the master with the session (XAPI's transfers); the caller closes the response.

        ``host`` sends it to another host of the pool instead (its address, the master's scheme and port:
        xcp-rrdd serves only its own host's statistics), under the same certificate policy. A 302 to another
        host of the pool (where the disks are) is followed, as xapi asks; the connection has no overall time
        limit, only one for connecting and one for silence.
        """
        if self.session is None or self._transport is None:
            await self.connect()
        assert self._transport is not None and self._http is not None
        where = self.master.with_host(host) if host else self.master
        url = where.url + path
        params = {**query, "session_id": self.session or ""}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=15, sock_read=600)
        ssl_opt = self._transport.ssl if self._transport.ssl is not None else True
        relogged = False
        for _ in range(4):
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    ssl=ssl_opt,
                    timeout=timeout,
                    allow_redirects=False,
                    read_bufsize=_TRANSFER_BUFFER,
                )
            except aiohttp.ServerFingerprintMismatch as e:
                raise TlsError(
                    f"{where} presented another certificate than the pinned one", e.got.hex().upper()
                ) from e
            except (aiohttp.ClientSSLError, ssl.SSLError) as e:
                raise TlsError(f"TLS with {where} failed: {e}") from e
            except (aiohttp.ClientConnectionError, OSError) as e:
                raise Unreachable(f"cannot reach {where}: {e}") from e
            if response.status == 401 and data is None and not relogged:
                response.close()  # the session expired: log in again once, as calls do
                relogged = True
                params["session_id"] = await self.connect(stale=params["session_id"])
                continue
            if response.status != 302 or "Location" not in response.headers:
                return response
            location = response.headers["Location"]
            response.close()
            if data is not None and not isinstance(data, bytes | str):
                # A streamed body may be partly sent already: it cannot be sent again from its start.
                raise ProtocolError(
                    f"{path}: the pool redirected the upload to {location.split('?', 1)[0]}, which a"
                    " streamed upload cannot follow"
                )
            url = location.split("?", 1)[0]
            log.info("%s %s is served by %s", method, path, url)
        raise XapiError(f"{path}: too many redirects")

    async def close(self) -> None:
        """Log out (best effort) and release the HTTP connections; the client is not used again."""
        self.closed = True
        await self.logout()
        if self._own_http and self._http is not None:
            await self._http.close()
            self._http = None


async def ask_master(endpoint: Endpoint, timeout: float = 10.0) -> Endpoint | None:
    """Ask a host whether it is a pool member, without credentials and without checking its certificate.

    xapi answers a login on a member with HOST_IS_SLAVE and the master's address before it looks at the
    user name and password, so the login sent here carries none: nothing secret goes to a host whose
    certificate nobody has confirmed yet. Returns the master's endpoint (the same scheme and port), or None
    when the host did not say it is a member: a master refuses the empty credentials (after xapi's delay
    for a failed login, which is not waited for beyond ``timeout``). What the host names is only an
    address: whoever connects there still checks that host's own certificate.
    """
    async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
        transport = Transport(http, endpoint, False, asyncio.Semaphore(1), timeout)
        try:
            session = await transport.call(
                "session.login_with_password", ["", "", API_VERSION, ORIGINATOR], timeout=timeout
            )
        except XapiFailure as e:
            if e.xapi_code == "HOST_IS_SLAVE" and e.params:
                log.info("%s is a pool member; its master is %s", endpoint, e.params[0])
                return endpoint.with_host(e.params[0])
            return None
        except CallTimeout:
            return None
        try:  # a host that lets anyone in: a master all the same
            await transport.call("session.logout", [session], timeout=5)
        except XapiError:
            pass
        return None
