"""The Podium server: one aiohttp application, its parts started and stopped with it.

Routes: ``GET /api/health`` for monitors, ``/api/`` the JSON-RPC WebSocket, ``/api/transfers/…`` the
one-shot downloads and uploads that methods answer with ``$getFrom`` / ``$sendTo``, ``/api/consoles/<vm>``
the console proxy, ``/`` and ``/static/…`` the web UI.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from aiohttp import web

from . import __version__
from .api import methods as _methods  # noqa: F401  (registers the API's methods)
from .api.audit import Audit
from .api.console import console
from .api.context import Services
from .api.ws import websocket
from .auth import Acls, Tokens, Users
from .cache import ObjectCache
from .config import Settings
from .db import Database, SecretBox
from .servers import ServerManager
from .web import setup as setup_web

log = logging.getLogger(__name__)


async def health(request: web.Request) -> web.Response:
    """Liveness for monitors: the server answers, and how its pools are."""
    services: Services = request.app["services"]
    servers = [c.status.state for c in services.servers.connections.values()]
    return web.json_response(
        {
            "status": "ok",
            "version": services.version,
            "pools": {"connected": servers.count("connected"), "total": len(servers)},
        }
    )


async def transfer(request: web.Request) -> web.StreamResponse:
    """A download or upload a method registered (see :mod:`.api.transfer`)."""
    services: Services = request.app["services"]
    return await services.transfers.serve(request)


def make_app(settings: Settings) -> web.Application:
    """The application; its parts start with it and stop with it."""
    # A larger read buffer than aiohttp's 64 KiB: uploads of VMs cross in fewer, larger pieces.
    app = web.Application(client_max_size=16 << 20, handler_args={"read_bufsize": 1 << 20})
    app["settings"] = settings
    app.cleanup_ctx.append(_services)
    app.router.add_get("/api/health", health)
    app.router.add_get("/api/", websocket)
    app.router.add_get("/api/consoles/{id}", console)
    for path in ("/api/transfers/{token}", "/api/transfers/{token}/{name}"):
        app.router.add_route("*", path, transfer)
    setup_web(app)
    return app


async def _services(app: web.Application) -> AsyncIterator[None]:
    settings: Settings = app["settings"]
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    settings.data_dir.chmod(0o700)
    db = Database(settings.db_url)
    await db.create()
    secrets = SecretBox(settings.data_dir / "secret.key")
    objects = ObjectCache()
    servers = ServerManager(db, secrets, objects)
    users = Users(db)
    await users.ensure_admin(
        settings.data_dir, settings.admin_email, settings.admin_password, settings.admin_password_hash
    )
    audit = Audit(db)
    app["services"] = Services(
        settings, db, secrets, objects, servers, users, Tokens(db, secrets), Acls(db), audit, __version__
    )
    writer = asyncio.get_running_loop().create_task(audit.run(), name="audit writer")
    await servers.start()
    log.info("Podium %s serving on %s:%d", __version__, settings.host, settings.port)
    yield
    await servers.close()
    writer.cancel()
    try:
        await writer
    except asyncio.CancelledError:
        pass
    await db.close()
