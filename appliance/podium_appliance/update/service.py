"""The updater's service: it runs as root, finishes an interrupted update at start, looks for new releases
on a schedule, and answers a narrow HTTP API on a unix socket (``run/podium-updater.sock``, mode 0660, group
``podium``) for the server and for ``podium-appliance update``:

    GET  /status                      what is installed and running, what happened last, what is available
    POST /check                       look for a new release on the channel now
    POST /apply    {version | upload | bundle, force, snapshot}   start an upgrade (202), one at a time
    POST /rollback {force}            start a rollback to the previous release (202)
    PUT  /upload                      a bundle file (the body), verified at once; answers its id and manifest
    GET  /events                      progress as NDJSON lines, ending with {"done": outcome} after each operation

Only root may name a file on the appliance (``bundle``) or force a downgrade; the server's user may do the
rest, and everything it sends is verified like anything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import logging
import os
import shutil
import socket
import struct
import time
import uuid
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any

from aiohttp import web

from ..box.system import run_async
from ..errors import ApplianceError
from ..layout import Layout
from .channel_client import ChannelClient
from .config import UpdateConfig
from .journal import Busy
from .releases import Outcome, status
from .signing import UpdateRefused
from .updater import Updater

log = logging.getLogger(__name__)

MAX_UPLOAD = 8 << 30


def peer_uid(request: web.Request) -> int | None:
    """The user id of the process at the other end of the unix socket."""
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is None or sock.family != socket.AF_UNIX:
        return None
    data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)


class UpdaterService:
    """One appliance's updater, as a long-running service."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.uploads = layout.update_state / "uploads"
        self.events: deque[dict[str, Any]] = deque(maxlen=500)
        self.seq = 0
        self.changed = asyncio.Condition()
        self.operation: str | None = None
        self.task: asyncio.Task[None] | None = None

    # -- progress ---------------------------------------------------------------------------------------
    def publish(self, event: dict[str, Any]) -> None:
        self.seq += 1
        self.events.append({"seq": self.seq, "at": time.time(), **event})

        async def wake() -> None:
            async with self.changed:
                self.changed.notify_all()

        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().create_task(wake())

    def updater(self) -> Updater:
        return Updater(self.layout, report=self.publish)

    # -- operations -------------------------------------------------------------------------------------
    def start(self, name: str, work: Any) -> None:
        """Run one operation in the background; a second while one runs is refused."""
        if self.operation is not None:
            raise Busy(f"an update operation is under way ({self.operation}); wait for it")
        self.operation = name

        async def body() -> None:
            try:
                outcome: Outcome | None = await work
                if outcome is not None:
                    self.publish({"done": asdict(outcome)})
                if outcome is not None and outcome.ok and outcome.operation == "upgrade":
                    # the new release's updater takes over (systemd restarts this service, --no-block)
                    await asyncio.sleep(1)  # the followers read the outcome first
                    settings = self.layout.settings()
                    await run_async(settings.command("updater_restart"), "restarting the updater")
            except ApplianceError as e:
                log.error("%s: %s", name, e.message)
                self.publish({"done": {"operation": name, "ok": False, "message": e.message}})
            except Exception as e:  # reported, and the service goes on
                log.exception("%s failed", name)
                self.publish({"done": {"operation": name, "ok": False, "message": f"internal error: {e}"}})
            finally:
                self.operation = None

        self.task = asyncio.get_running_loop().create_task(body())

    async def check(self) -> dict[str, Any]:
        """Look for a new release now; the answer is kept in the state for ``/status``."""
        config = UpdateConfig.load(self.layout)
        return await ChannelClient(self.layout, config).check()

    async def scheduled(self) -> None:
        """Look for a new release every ``check_hours`` (never applied without being asked)."""
        await asyncio.sleep(60)
        while True:
            hours = UpdateConfig.load(self.layout).check_hours
            if hours <= 0:
                await asyncio.sleep(3600)
                continue
            if self.operation is None:
                try:
                    await self.check()
                except ApplianceError as e:
                    log.warning("scheduled update check: %s", e.message)
            await asyncio.sleep(hours * 3600)

    # -- HTTP -------------------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20, middlewares=[_errors])
        routes = [
            web.get("/status", self.h_status),
            web.post("/check", self.h_check),
            web.post("/apply", self.h_apply),
            web.post("/rollback", self.h_rollback),
            web.put("/upload", self.h_upload),
            web.get("/events", self.h_events),
        ]
        app.add_routes(routes)
        return app

    async def h_status(self, request: web.Request) -> web.Response:
        info = status(self.layout)
        info["busy"] = self.operation
        info["progress"] = self.events[-1] if self.events else None
        info["channel"] = UpdateConfig.load(self.layout).channel
        return web.json_response(info)

    async def h_check(self, request: web.Request) -> web.Response:
        if self.operation is not None:
            raise Busy(f"an update operation is under way ({self.operation}); wait for it")
        return web.json_response(await self.check())

    async def _body(self, request: web.Request) -> dict[str, Any]:
        if not request.can_read_body:
            return {}
        try:
            body = await request.json()
        except ValueError:
            raise ApplianceError("the request body must be JSON") from None
        if not isinstance(body, dict):
            raise ApplianceError("the request body must be a JSON object")
        return body

    async def h_apply(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        force, snapshot = bool(body.get("force", False)), body.get("snapshot")
        root = peer_uid(request) == 0
        if force and not root:
            raise UpdateRefused("only root, on the appliance, may force an update")
        config = UpdateConfig.load(self.layout)
        if body.get("bundle"):
            if not root:
                raise UpdateRefused("only root may install a bundle from a file on the appliance; upload it")
            bundle = Path(str(body["bundle"]))
        elif body.get("upload"):
            name = str(body["upload"])
            if not name.replace("-", "").isalnum():
                raise ApplianceError("no such upload")
            bundle = self.uploads / f"{name}.bundle"
            if not bundle.exists():
                raise ApplianceError("no such upload (they are kept until the next restart of the updater)")
        else:
            bundle = None  # from the channel
        updater = self.updater()
        channel = body.get("channel") or None

        async def work() -> Outcome:
            path = bundle or await ChannelClient(self.layout, config, report=self.publish).download(
                body.get("version") or None
            )
            return await updater.apply(
                path, channel=channel, force=force, snapshot=None if snapshot is None else bool(snapshot)
            )

        self.start("upgrade", work())
        return web.json_response({"started": "upgrade", "seq": self.seq}, status=202)

    async def h_rollback(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        force = bool(body.get("force", False))
        self.start("rollback", self.updater().rollback(force=force))
        return web.json_response({"started": "rollback", "seq": self.seq}, status=202)

    async def h_upload(self, request: web.Request) -> web.Response:
        """Stream the body to a file, then verify it (signature, payload, channel, version) at once."""
        self.uploads.mkdir(parents=True, exist_ok=True, mode=0o700)
        name = str(uuid.uuid4())
        path = self.uploads / f"{name}.bundle"
        size = 0
        try:
            with path.open("wb") as f:
                async for chunk in request.content.iter_chunked(1 << 20):
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        raise ApplianceError(
                            f"the upload is larger than {MAX_UPLOAD >> 30} GiB: not a bundle"
                        )
                    f.write(chunk)
            force = request.query.get("force") == "1" and peer_uid(request) == 0
            manifest = await asyncio.to_thread(
                self.updater().verify, path, channel=request.query.get("channel") or None, force=force
            )
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return web.json_response(
            {"upload": name, "size": size, "manifest": manifest.to_dict(), "signed_by": manifest.signed_by}
        )

    async def h_events(self, request: web.Request) -> web.StreamResponse:
        since = int(request.query.get("since", self.seq))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        while True:
            for event in list(self.events):
                if event["seq"] > since:
                    await resp.write(json.dumps(event).encode() + b"\n")
                    since = event["seq"]
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), 15)
            if not any(e["seq"] > since for e in self.events):
                await resp.write(b"\n")  # keep-alive; also notices a client that went away


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Refusals and failures as JSON a client can show: {"error": message, "refused": bool}."""
    try:
        return await handler(request)  # type: ignore[no-any-return]
    except Busy as e:
        return web.json_response({"error": e.message, "busy": True}, status=409)
    except UpdateRefused as e:
        return web.json_response({"error": e.message, "refused": True}, status=400)
    except ApplianceError as e:
        return web.json_response({"error": e.message}, status=400)


async def serve(layout: Layout) -> None:
    """Run the service until cancelled: recover first, then the socket and the schedule."""
    service = UpdaterService(layout)
    for leftovers in (service.uploads, layout.update_state / "downloads"):  # bundles of earlier runs
        shutil.rmtree(leftovers, ignore_errors=True)
    path = layout.update_socket
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    runner = web.AppRunner(service.app(), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.UnixSite(runner, str(path))
    await site.start()
    os.chmod(path, 0o660)
    with contextlib.suppress(KeyError, PermissionError):
        os.chown(path, -1, grp.getgrnam("podium").gr_gid)
    log.info("the updater answers on %s", path)
    service.start("recover", service.updater().recover())
    schedule = asyncio.get_running_loop().create_task(service.scheduled())
    try:
        await asyncio.Event().wait()
    finally:
        schedule.cancel()
        await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
