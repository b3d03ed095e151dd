"""The web UI: a page shell (jinja2) and JavaScript modules that talk to the same WebSocket API as every
other client (no private endpoints), served by the server without a build step."""

from __future__ import annotations

from pathlib import Path

import jinja2
from aiohttp import web

HERE = Path(__file__).resolve().parent
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
)


async def index(request: web.Request) -> web.Response:
    """The application shell; the scripts sign in (or resume with the token cookie) over /api/."""
    html = _TEMPLATES.get_template("index.html").render(version=request.app["services"].version)
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-cache"})


async def _revalidate(request: web.Request, response: web.StreamResponse) -> None:
    # The modules import each other by plain relative names, so no URL carries a version: browsers ask
    # again each time (a 304 when unchanged), and an updated server never runs half old, half new code.
    if request.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-cache"


def setup(app: web.Application) -> None:
    """Add the UI's routes: ``/`` and ``/static/…``."""
    app.router.add_get("/", index)
    app.router.add_static("/static/", HERE / "static")
    app.on_response_prepare.append(_revalidate)
