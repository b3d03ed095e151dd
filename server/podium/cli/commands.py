"""The commands: register, create-token, unregister, list-commands, list-objects, watch, and any API method."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import difflib
import json
import secrets
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from .config import config_path, load, save
from .errors import AuthError, CliError, ConnectError, RpcError, UsageError
from .params import match_names, parse_params
from .rpc import ApiConnection, check_url
from .session import (
    INVALID_CREDENTIALS,
    Globals,
    client_label,
    connect,
    open_trusting,
    read_password,
    sign_in_token,
    warn_cleartext,
)
from .transfer import CHUNK, check_target, download, upload

Command = Callable[[Globals, list[str]], Awaitable[int]]
METHOD_NOT_FOUND = -32601
INVALID_PARAMETERS = 10


def out(text: str) -> None:
    """Write a line to stdout."""
    sys.stdout.write(text + "\n")


def dump(value: Any) -> str:
    """JSON for people: indented, keys in order."""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


# --- register, create-token, unregister ---------------------------------------------------------------


@dataclass
class RegisterArgs:
    url: str
    user: str | None
    password: str | None
    token: str | None
    expires_in: str | None
    otp: str | None
    allow_unauthorized: bool


_VALUED = {"--expiresIn": "expires_in", "--otp": "otp", "--token": "token", "-t": "token"}


def parse_register(args: list[str], g: Globals, accept_token: bool) -> RegisterArgs:
    """``[--au] [--expiresIn D] [--otp CODE] URL USER [PASSWORD]`` or ``--token TOKEN URL``."""
    values: dict[str, str | None] = {"expires_in": None, "otp": None, "token": None}
    allow = g.allow_unauthorized
    words, rest = list(args), []
    while words:  # options anywhere; after --, everything is an argument (a password starting with -)
        word = words.pop(0)
        if word == "--":
            rest += words
            break
        if not word.startswith("-") or word == "-":
            rest.append(word)
            continue
        name, eq, value = word.partition("=")
        if name in ("--allowUnauthorized", "--au"):
            allow = True
        elif name in _VALUED:
            if not eq:
                if not words:
                    raise UsageError(f"{name} needs a value")
                value = words.pop(0)
            values[_VALUED[name]] = value
        else:
            raise UsageError(f"unknown option {word} (see podium --help)")
    if values["token"] is not None and not accept_token:
        raise UsageError("--token is for register; create-token needs a user and password")
    if not rest:
        raise UsageError("give the server's URL, e.g. podium register https://podium.example.net USER")
    url = check_url(rest[0])
    if values["token"] is None and len(rest) < 2:
        raise UsageError(f"give the user to sign in as: podium register {url} USER [PASSWORD]")
    if len(rest) > (1 if values["token"] is not None else 3):  # (not echoed: one may be a password)
        raise UsageError(
            f"too many arguments: {len(rest)} given, at most URL USER PASSWORD (see podium --help)"
        )
    return RegisterArgs(
        url=url,
        user=rest[1] if len(rest) > 1 else None,
        password=rest[2] if len(rest) > 2 else None,
        allow_unauthorized=allow,
        **values,
    )


async def _create_token(conn: ApiConnection, a: RegisterArgs, description: str, client_id: str | None) -> str:
    """Sign in with the password and ask for a token."""
    password = a.password if a.password is not None else read_password()
    credentials: dict[str, Any] = {"email": a.user, "password": password}
    if a.otp:
        credentials["otp"] = a.otp
    try:
        user = await conn.call("session.signIn", credentials)
    except RpcError as e:
        if e.code in INVALID_CREDENTIALS:
            raise AuthError(f"{a.url} refused {a.user}: {e.message}") from e
        raise
    email = user.get("email", a.user) if isinstance(user, dict) else a.user
    print(f"Successfully logged with {email}", file=sys.stderr)
    params: dict[str, Any] = {"description": description}
    if client_id is not None:
        params["client"] = {"id": client_id}
    if a.expires_in is not None:
        params["expiresIn"] = a.expires_in
    try:
        return str(await conn.call("token.create", params))
    except RpcError as e:  # an older server knows neither client nor description: ask as xo-cli does
        if e.code != INVALID_PARAMETERS:
            raise
        retry = {"expiresIn": a.expires_in} if a.expires_in is not None else {}
        return str(await conn.call("token.create", retry))


async def register(g: Globals, args: list[str]) -> int:
    """Sign in (or check a token), and keep the server and a token in the configuration."""
    a = parse_register(args, g, accept_token=True)
    config = load(config_path())
    client_id = config.clientId or secrets.token_urlsafe(12)
    warn_cleartext(a.url)
    conn, tls = await open_trusting(a.url, a.allow_unauthorized)
    try:
        if a.token is not None:
            user = await sign_in_token(conn, a.token, registered=False)
            print(f"Successfully logged with {user.get('email', '?')}", file=sys.stderr)
            token = a.token
        else:
            token = await _create_token(conn, a, client_label(), client_id)
        config.server, config.token, config.clientId = a.url, token, client_id
        config.fingerprint = tls.fingerprint
        config.allowUnauthorized = tls.fingerprint is not None  # --au means "this certificate", no other
        try:
            save(config_path(), config)
        except CliError:
            if a.token is None:  # a token nobody will ever know: take it back
                with contextlib.suppress(RpcError, ConnectError):
                    await conn.call("token.deleteOwn", {"tokens": [token]})
            raise
    finally:
        await conn.close()
    return 0


async def create_token(g: Globals, args: list[str]) -> int:
    """Sign in and print a new token (for scripts); nothing is stored."""
    a = parse_register(args, g, accept_token=False)
    warn_cleartext(a.url)
    conn, _ = await open_trusting(a.url, a.allow_unauthorized)
    try:
        token = await _create_token(conn, a, "podium create-token", None)
    finally:
        await conn.close()
    print("Authentication token created\n", file=sys.stderr)
    out(token)
    return 0


async def unregister(g: Globals, args: list[str]) -> int:
    """Forget the server and its token, revoking the token on the server when it can be reached."""
    if args:
        raise UsageError(f"unregister takes no arguments: {' '.join(args)}")
    config = load(config_path())
    if not config.server:
        print("not registered with any server", file=sys.stderr)
        return 0
    note = "its token was revoked"
    try:
        conn = await asyncio.wait_for(connect(Globals()), 15)
        try:
            await conn.call("token.deleteOwn", {"tokens": [config.token]})
        finally:
            await conn.close()
    except (AuthError, ConnectError, RpcError, TimeoutError) as e:
        note = f"its token could not be revoked ({getattr(e, 'message', 'no answer')}); it expires by itself"
    server = config.server
    config.server = config.token = config.fingerprint = None
    config.allowUnauthorized = False
    save(config_path(), config)
    print(f"Unregistered from {server}: {note}", file=sys.stderr)
    return 0


# --- list-commands, list-objects -------------------------------------------------------------------


def _signature(info: dict[str, Any]) -> str:
    words = []
    for name, spec in (info.get("params") or {}).items():
        kind = spec.get("type")
        kind = "|".join(kind) if isinstance(kind, list) else kind or "unknown type"
        word = f"{name}=<{kind}>"
        words.append(f"[{word}]" if spec.get("optional") or "default" in spec else word)
    return " ".join(words)


async def list_commands(g: Globals, args: list[str]) -> int:
    """The server's methods, with their parameters and descriptions (filtered by glob patterns)."""
    as_json = "--json" in args
    patterns = [a for a in args if a != "--json"]
    conn = await connect(g)
    try:
        methods: dict[str, Any] = await conn.call("system.getMethodsInfo")
    finally:
        await conn.close()
    names = match_names(sorted(methods), patterns) if patterns else sorted(methods)
    if as_json:
        out(dump({n: methods[n] for n in names}))
        return 0
    bold = ("\033[1;34m", "\033[0m") if sys.stdout.isatty() else ("", "")
    for name in names:
        info = methods[name]
        signature = _signature(info)
        out(f"{bold[0]}{name}{bold[1]}" + (f" {signature}" if signature else ""))
        if info.get("description"):
            out(f"  {info['description']}")
    return 0


async def _ndjson(conn: ApiConnection, path: str) -> Any:
    """The objects of an NDJSON download, one by one, as they arrive."""
    assert conn.http is not None
    try:
        async with conn.http.get(conn.http_url(path), ssl=conn.ssl()) as response:
            if response.status != 200:
                raise ConnectError(f"{conn.server} answered HTTP {response.status} to the list of objects")
            buffer = b""
            async for data in response.content.iter_chunked(CHUNK):
                buffer += data
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield json.loads(line)
            if buffer.strip():
                yield json.loads(buffer)
    except (aiohttp.ClientError, OSError) as e:
        raise ConnectError(f"the list of objects from {conn.server} was cut: {e}") from e
    except ValueError as e:
        raise CliError(f"{conn.server} sent a list of objects that is not JSON: {e}") from e


async def list_objects(g: Globals, args: list[str]) -> int:
    """The objects the user may see, as a JSON array, filtered by ``PROPERTY=VALUE``, cut to ``--PROPERTY``."""
    keep = [a[2:] for a in args if a.startswith("--")]  # xo-cli wants them first; anywhere will do
    rest = [a for a in args if not a.startswith("--")]
    filter_ = parse_params(rest) if rest else None
    conn = await connect(g)
    try:
        try:
            answer = await conn.call("xo.getAllObjects", {"filter": filter_, "ndjson": True})
        except RpcError as e:  # a server without ndjson: everything at once
            if e.code != INVALID_PARAMETERS:
                raise
            answer = await conn.call("xo.getAllObjects", {"filter": filter_})
        if isinstance(answer, dict) and set(answer) == {"$getFrom"}:
            objects: Any = _ndjson(conn, answer["$getFrom"])
        else:
            objects = _aiter(list(answer.values()) if isinstance(answer, dict) else [])
        sys.stdout.write("[")
        first = True
        async for obj in objects:
            shown = {k: obj[k] for k in keep if k in obj} if keep else obj
            text = json.dumps(shown, indent=2, ensure_ascii=False)
            sys.stdout.write(("\n" if first else ",\n") + text)
            first = False
        sys.stdout.write("\n]\n" if not first else "]\n")
    finally:
        await conn.close()
    return 0


async def _aiter(items: list[Any]) -> Any:
    for item in items:
        yield item


# --- calling a method ------------------------------------------------------------------------------


async def _explain(conn: ApiConnection, method: str, e: RpcError) -> RpcError:
    """An unknown method names the closest ones; invalid parameters say which and what was expected."""
    if e.code == METHOD_NOT_FOUND:
        with contextlib.suppress(RpcError, ConnectError):
            names = await conn.call("system.listMethods")
            close = difflib.get_close_matches(method, names, n=4, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else "podium list-commands lists them"
            return RpcError(e.code, f"no method {method} on {conn.server}: {hint}", e.data)
        return e
    if e.code == INVALID_PARAMETERS and isinstance(e.data, dict) and isinstance(e.data.get("errors"), list):
        spec: dict[str, Any] = {}
        with contextlib.suppress(RpcError, ConnectError, IndexError, TypeError):
            spec = (await conn.call("system.methodSignature", {"method": method}))[0].get("params") or {}
        lines = [f"invalid parameters for {method}:"]
        for err in e.data["errors"]:
            lines.append("  " + _problem(err, spec))
        if spec:
            lines.append(f"  usage: podium {method} {_signature({'params': spec})}")
        return RpcError(e.code, "\n".join(lines), e.data)
    return e


def _problem(err: dict[str, Any], spec: dict[str, Any]) -> str:
    path = str(err.get("instancePath", "")).strip("/").replace("/", ".")
    params = err.get("params") or {}
    keyword = err.get("keyword")
    if keyword == "required":
        name = params.get("missingProperty", "?")
        name = f"{path}.{name}" if path else name
        kind = (spec.get(name) or {}).get("type")
        return f"{name}: missing" + (f" (expected {_kind(kind)})" if kind else "")
    if keyword == "additionalProperties":
        return f"{params.get('additionalProperty', '?')}: not a parameter of this method"
    kind = (spec.get(path) or {}).get("type")
    expected = f" (expected {_kind(kind)})" if kind and keyword != "type" else ""
    return f"{path or '@'}: {err.get('message', 'invalid')}{expected}"


def _kind(kind: Any) -> str:
    return " or ".join(kind) if isinstance(kind, list) else str(kind)


async def call(g: Globals, args: list[str]) -> int:
    """``METHOD [--json] NAME=VALUE… [@=FILE]``: call it; a download or upload it answers goes through ``@``."""
    method, *rest = args
    as_json = "--json" in rest
    params = parse_params([a for a in rest if a != "--json"])
    file = params.pop("@", None)
    if file is not None and not isinstance(file, str):
        raise UsageError("@ names a file (or - for stdin/stdout), e.g. @=vm.xva")
    if file is not None:
        check_target(file)
    conn = await connect(g)
    try:
        try:
            result = await conn.call(method, params)
        except RpcError as e:
            raise await _explain(conn, method, e) from e
        transfer = next(iter(result)) if isinstance(result, dict) and len(result) == 1 else None
        if transfer in ("$getFrom", "$sendTo"):
            if file is None:
                what = "a download" if transfer == "$getFrom" else "an upload"
                raise UsageError(f"{method} answers {what}: add @=FILE (or @=- for standard input/output)")
            if transfer == "$getFrom":
                where = await download(conn, result[transfer], file)
                if where != "standard output":
                    print(f"saved {where}", file=sys.stderr)
                return 0
            result = await upload(conn, result[transfer], file)
        elif file is not None:
            print(f"warning: {method} moves no file; @={file} was not used", file=sys.stderr)
    finally:
        await conn.close()
    if isinstance(result, str) and not as_json:
        out(result)
    else:
        out(dump(result))
    return 0


# --- watch ---------------------------------------------------------------------------------------------


_STATE = {"VM": "power_state", "host": "power_state", "VM-controller": "power_state", "task": "status"}


def _describe(kind: str, id_: str, obj: Any, names: dict[str, str]) -> str:
    if kind == "exit":
        return f"exit  {names.pop(id_, id_)}"
    if not isinstance(obj, dict):
        return f"enter {id_}"
    label = f"{obj.get('type', '?')} {id_}"
    if obj.get("name_label"):
        label += f" {json.dumps(obj['name_label'], ensure_ascii=False)}"
    names[id_] = label
    state = _STATE.get(str(obj.get("type")))
    return f"enter {label}" + (f" {state}={obj.get(state)}" if state and state in obj else "")


async def watch(g: Globals, args: list[str]) -> int:
    """Print the notifications the server pushes until Ctrl-C (``--ndjson``: each as a JSON line)."""
    ndjson = "--ndjson" in args or "--json" in args
    unknown = [a for a in args if a not in ("--ndjson", "--json")]
    if unknown:
        raise UsageError(f"watch takes --ndjson only, not {' '.join(unknown)}")
    conn = await connect(g, notifications=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    counts: dict[str, int] = {}
    names: dict[str, str] = {}
    stopped = asyncio.ensure_future(stop.wait())
    print(f"watching {conn.server} (Ctrl-C to stop)", file=sys.stderr, flush=True)
    try:
        while True:
            got = asyncio.ensure_future(conn.notifications.get())
            done, _ = await asyncio.wait({got, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stopped in done:
                got.cancel()
                break
            note = got.result()
            if note is None:
                raise ConnectError(f"the connection to {conn.server} closed")
            method = str(note.get("method"))
            counts[method] = counts.get(method, 0) + 1
            params = note.get("params")
            if ndjson:
                out(json.dumps({"method": method, "params": params}, ensure_ascii=False))
            elif method == "all" and isinstance(params, dict) and isinstance(params.get("items"), dict):
                stamp = datetime.datetime.now().strftime("%H:%M:%S")
                for id_, obj in params["items"].items():
                    out(f"{stamp} {_describe(str(params.get('type')), id_, obj, names)}")
            else:
                out(f"{method} {json.dumps(params, ensure_ascii=False)}")
            sys.stdout.flush()
    finally:
        stopped.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await conn.close()
    print("\nnotifications received:", file=sys.stderr)
    for method, count in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {method}: {count}", file=sys.stderr)
    return 0


COMMANDS: dict[str, Command] = {
    "register": register,
    "create-token": create_token,
    "unregister": unregister,
    "list-commands": list_commands,
    "list-objects": list_objects,
    "watch": watch,
}
