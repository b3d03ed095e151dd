"""xo.*: the objects of every connected pool that the user may see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from aiohttp import web

from ..context import Context
from ..params import boolean, number, object_
from ..registry import api


def matches(obj: dict[str, Any], pattern: dict[str, Any]) -> bool:
    """Whether an object has every property of a pattern (nested patterns for nested objects)."""
    for key, want in pattern.items():
        have = obj.get(key)
        if isinstance(want, dict) and isinstance(have, dict):
            if not matches(have, want):
                return False
        elif have != want:
            return False
    return True


@api(
    "xo.getAllObjects",
    params={
        "filter": object_(optional=True, description="properties the objects must have"),
        "limit": number(optional=True, minimum=0),
        "ndjson": boolean(default=False, description="answer a download, one object a line"),
    },
)
async def get_all_objects(
    ctx: Context, filter: dict[str, Any] | None = None, limit: int | None = None, ndjson: bool = False
) -> dict[str, Any]:
    """Every object the user may see, by id (filtered, limited); with ndjson, a ``$getFrom`` download of them."""
    if ndjson:
        return {"$getFrom": _ndjson_download(ctx, filter, limit)}
    return dict(_visible(ctx, filter, limit))


def _visible(ctx: Context, filter: dict[str, Any] | None, limit: int | None) -> Iterator[tuple[str, Any]]:
    count = 0
    for id_, obj in list(ctx.services.objects.objects.items()):
        if limit is not None and count >= limit:
            return
        if ctx.can_see(obj) and (filter is None or matches(obj, filter)):
            count += 1
            yield id_, obj


def _ndjson_download(ctx: Context, filter: dict[str, Any] | None, limit: int | None) -> str:
    """Register the download; the objects are read, and the user's rights applied, when it is fetched."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        batch = bytearray()
        for _id, obj in _visible(ctx, filter, limit):
            batch += orjson.dumps(obj) + b"\n"
            if len(batch) >= 256 << 10:
                await response.write(bytes(batch))
                batch.clear()
        await response.write(bytes(batch))
        await response.write_eof()
        return response

    return ctx.services.transfers.register(
        handler, upload=False, what="xo.getAllObjects", user=ctx.who, name="objects.ndjson"
    )
