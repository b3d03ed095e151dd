"""updater.*: the appliance's in-place updates, for admins (status, check, upgrade, rollback, upload).

The work is done by the appliance's updater service (root, its own unit), which answers on a unix socket;
these methods relay to it. The server is restarted by an upgrade, so a client follows the progress with
``updater.getState`` (also after reconnecting), not with a call that lasts the whole upgrade.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from ...errors import PodiumError
from ..context import Context
from ..params import string
from ..registry import api
from ..transfer import error_response, upload_answer


class UpdaterUnavailable(PodiumError):
    """No updater answers: this server is not on a Podium appliance, or the updater service is stopped."""

    code = 11  # XO's "operation failed"
    status = 503


class UpdaterRefused(PodiumError):
    """The updater refused (a bad bundle, a downgrade, another operation under way …), with its message."""

    code = 10
    status = 400


def _socket(ctx: Context) -> Path:
    return Path(ctx.services.settings.updater_socket)


async def relay(socket: Path, method: str, path: str, **kwargs: Any) -> Any:
    """One request to the updater service; its JSON answer, or its refusal as an error."""
    if not await asyncio.to_thread(socket.exists):
        raise UpdaterUnavailable(
            f"the updater is not available ({socket} does not exist): this server does not run on a Podium "
            "appliance, or its updater service is stopped"
        )
    try:
        async with (
            aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(socket))) as http,
            http.request(method, f"http://updater{path}", **kwargs) as resp,
        ):
            data = await resp.json(content_type=None)
    except (aiohttp.ClientError, OSError, ValueError) as e:
        raise UpdaterUnavailable(f"the updater service does not answer: {e}") from e
    if resp.status >= 400:
        raise UpdaterRefused(str(data.get("error", f"the updater answered {resp.status}")))
    return data


@api("updater.getState", permission="admin", params={})
async def get_state(ctx: Context) -> Any:
    """Installed and running releases, the operation under way and its progress, the last outcome and check."""
    return await relay(_socket(ctx), "GET", "/status")


@api("updater.check", permission="admin", params={})
async def check(ctx: Context) -> Any:
    """Look for a new release on the appliance's channel now; its version and release notes if any."""
    return await relay(_socket(ctx), "POST", "/check")


@api(
    "updater.upgrade",
    permission="admin",
    params={
        "version": string(optional=True, description="default: the newest"),
        "upload": string(optional=True, description="an id from updater.upload"),
    },
)
async def upgrade(ctx: Context, version: str | None = None, upload: str | None = None) -> Any:
    """Start an upgrade (the newest release of the channel, a given one, or an uploaded bundle); follow it
    with updater.getState. The server restarts during it."""
    body: dict[str, Any] = {}
    if upload:
        body["upload"] = upload
    elif version:
        body["version"] = version
    return await relay(_socket(ctx), "POST", "/apply", json=body)


@api("updater.rollback", permission="admin", params={})
async def rollback(ctx: Context) -> Any:
    """Start a rollback to the release this one was upgraded from (refused when it would lose data)."""
    return await relay(_socket(ctx), "POST", "/rollback", json={})


@api("updater.upload", permission="admin", params={})
async def upload(ctx: Context) -> Any:
    """Upload a bundle file (an offline update): answers ``$sendTo``; the upload's answer is the verified
    bundle's id and manifest, to pass to updater.upgrade."""
    socket = _socket(ctx)

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            answer = await relay(socket, "PUT", "/upload", data=request.content)
        except PodiumError as e:
            return error_response(e)
        return upload_answer(answer)

    path = ctx.services.transfers.register(handler, upload=True, what="updater.upload", user=ctx.who)
    return {"$sendTo": path}
