"""Who ``podium`` talks to and as whom: the registered server and token (or ``--url``), signed in."""

from __future__ import annotations

import getpass
import platform
import signal
import socket
import sys
import urllib.parse
from dataclasses import dataclass

from .. import __version__
from .config import Config, config_path, load
from .errors import AuthError, ConnectError, RpcError, UsageError
from .rpc import ApiConnection, Tls, check_url, peer_fingerprint

INVALID_CREDENTIALS = (3, 8)  # Xen Orchestra's invalidCredentials and authenticationFailed


@dataclass
class Globals:
    """The options given before the command."""

    allow_unauthorized: bool = False
    url: str | None = None  # https://TOKEN@host/: a server and token instead of the registered ones
    traceback: bool = False


def client_label() -> str:
    """How this client describes the tokens it asks for: program, host, system."""
    return f"podium@{__version__} - {socket.gethostname()} - {platform.system()} {platform.machine()}"


def read_password(prompt: str = "Password: ") -> str:
    """Ask on the terminal without echo, or read one line from a pipe."""
    if sys.stdin.isatty():
        # The prompt blocks the event loop, where asyncio's Ctrl-C handler would wait: let Ctrl-C raise.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            password = getpass.getpass(prompt)
        except EOFError:
            password = ""
        finally:
            signal.signal(signal.SIGINT, previous)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise UsageError("no password given (give it after the user name, or type it when asked)")
    return password


def warn_cleartext(url: str) -> None:
    """http:// to another machine sends secrets in the clear: say so."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        print(
            f"warning: {url} is plain http: the password and token cross the network unencrypted;"
            " use https:// when you can",
            file=sys.stderr,
        )


async def open_trusting(url: str, allow_unauthorized: bool) -> tuple[ApiConnection, Tls]:
    """Connect verifying the certificate; with ``--au``, a certificate that fails is pinned by its fingerprint."""
    try:
        return await ApiConnection(url, Tls()).open(), Tls()
    except ConnectError as e:
        if not allow_unauthorized or not url.startswith("https:") or "not trusted" not in e.message:
            raise
    fingerprint = await peer_fingerprint(url)
    if fingerprint is None:
        raise ConnectError(f"cannot read the certificate of {url}")
    tls = Tls(fingerprint=fingerprint)
    conn = await ApiConnection(url, tls).open()
    print(
        f"Accepted the certificate of {url} (SHA-256 {fingerprint}); only this certificate will be trusted",
        file=sys.stderr,
    )
    return conn, tls


def target(g: Globals) -> tuple[str, str, Tls]:
    """The server URL, token and TLS choice to use: ``--url`` or the registration."""
    if g.url is not None:
        parts = urllib.parse.urlsplit(check_url(g.url))
        token = urllib.parse.unquote(parts.username or "")
        if not token:
            raise UsageError("--url must carry a token: https://TOKEN@host/")
        netloc = parts.hostname or ""
        netloc = f"[{netloc}]" if ":" in netloc else netloc
        netloc += f":{parts.port}" if parts.port else ""
        server = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        return server, token, Tls(allow_any=g.allow_unauthorized)
    config: Config = load(config_path())
    if not config.server or not config.token:
        raise AuthError(
            "not registered with a server: run podium register URL USER first (see podium --help)"
        )
    allow_any = g.allow_unauthorized or (config.allowUnauthorized and not config.fingerprint)
    return config.server, config.token, Tls(allow_any=allow_any, fingerprint=config.fingerprint)


async def sign_in_token(conn: ApiConnection, token: str, registered: bool = True) -> dict[str, object]:
    """Sign in with a token; a refused token says what to do."""
    try:
        user = await conn.call("session.signIn", {"token": token})
    except RpcError as e:
        if e.code in INVALID_CREDENTIALS:
            hint = f"register again: podium register {conn.server} USER" if registered else "create a new one"
            raise AuthError(f"{conn.server} refused the token ({e.message}): {hint}") from e
        raise
    return user if isinstance(user, dict) else {}


async def connect(g: Globals, notifications: bool = False) -> ApiConnection:
    """A connection to the server, signed in with the token (keeping what it pushes, for a watcher)."""
    server, token, tls = target(g)
    conn = await ApiConnection(server, tls, notifications).open()
    try:
        await sign_in_token(conn, token, registered=g.url is None)
    except BaseException:
        await conn.close()
        raise
    return conn
