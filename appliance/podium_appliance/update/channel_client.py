"""Talking to the update server: the channel's signed index, then the bundle, through the site's HTTP proxy
when one is set. What the index says is believed only once its signature verifies with a trusted key, its
channel is the one asked, it has not expired and it is not older than the last one seen."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp

from ..errors import ApplianceError
from ..layout import Layout
from .channel import Release, verify_index
from .config import UpdateConfig
from .journal import Report
from .releases import Releases, State
from .signing import Keyring, UpdateRefused

MAX_INDEX = 4 << 20


class ChannelClient:
    """One check or download against the configured update server."""

    def __init__(self, layout: Layout, config: UpdateConfig, report: Report | None = None) -> None:
        self.layout = layout
        self.config = config
        self.report = report or (lambda event: None)
        self.downloads = layout.update_state / "downloads"

    @property
    def index_url(self) -> str:
        if not self.config.url:
            raise ApplianceError(
                "no update server is configured (url in etc/podium/updates.toml); upload a bundle instead"
            )
        return urljoin(self.config.url.rstrip("/") + "/", f"{self.config.channel}/index.json")

    def _session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=20, sock_read=60))

    async def _index(self, http: aiohttp.ClientSession) -> tuple[Any, State]:
        url = self.index_url
        try:
            async with http.get(url, proxy=self.config.proxy or None) as resp:
                if resp.status != 200:
                    raise ApplianceError(f"the update server answered {resp.status} for {url}")
                data = await resp.content.read(MAX_INDEX + 1)
        except aiohttp.ClientError as e:
            via = f" through the proxy {self.config.proxy}" if self.config.proxy else ""
            raise ApplianceError(f"cannot reach the update server {url}{via}: {e}") from e
        if len(data) > MAX_INDEX:
            raise UpdateRefused(f"the channel index at {url} is larger than {MAX_INDEX >> 20} MiB: refused")
        state = State(self.layout)
        keyring = Keyring.load(self.layout)
        index = verify_index(
            data,
            keyring,
            channel=self.config.channel,
            last_serial=int(state.data.get("last_serial", 0)),
            now=time.time(),
        )
        if index.keys:
            keyring.accept(index.keys)
        state.data["last_serial"] = index.serial
        state.save()
        return index, state

    async def check(self) -> dict[str, Any]:
        """The newest release the appliance could move to (None if up to date); kept in the state."""
        releases = Releases(self.layout)
        current = releases.current()
        try:
            async with self._session() as http:
                index, state = await self._index(http)
        except ApplianceError as e:
            state = State(self.layout)
            state.data["last_check"] = {"at": time.time(), "ok": False, "message": e.message}
            state.save()
            raise
        newest = index.newest(current, skip=set(state.data["bad"]))
        answer: dict[str, Any] = {
            "at": time.time(),
            "ok": True,
            "channel": self.config.channel,
            "serial": index.serial,
            "current": current,
            "available": _release(newest) if newest else None,
            "message": f"{newest.version} is available" if newest else f"{current} is the newest release",
        }
        state.data["last_check"] = answer
        state.save()
        return answer

    async def download(self, version: str | None) -> Path:
        """The bundle of ``version`` (default: the newest available), checked against the index's size and
        SHA-256 as it arrives; its signature is verified by the installer like any bundle's."""
        releases = Releases(self.layout)
        async with self._session() as http:
            index, state = await self._index(http)
            if version:
                wanted = next((r for r in index.releases if r.version == version), None)
                if wanted is None:
                    raise ApplianceError(f"the {self.config.channel} channel has no release {version}")
            else:
                wanted = index.newest(releases.current(), skip=set(state.data["bad"]))
                if wanted is None:
                    raise ApplianceError("no newer release on the channel: nothing to install")
            url = urljoin(self.index_url, wanted.file)
            self.downloads.mkdir(parents=True, exist_ok=True, mode=0o700)
            dest = self.downloads / f"podium-{wanted.version}.bundle"
            part = dest.with_suffix(".part")
            digest = hashlib.sha256()
            got = 0
            message = f"downloading {wanted.version}"
            try:
                async with http.get(url, proxy=self.config.proxy or None) as resp:
                    if resp.status != 200:
                        raise ApplianceError(f"the update server answered {resp.status} for {url}")
                    with part.open("wb") as f:
                        async for chunk in resp.content.iter_chunked(1 << 20):
                            got += len(chunk)
                            if got > wanted.size:
                                raise UpdateRefused(f"{url} is larger than the index says: refused")
                            digest.update(chunk)
                            f.write(chunk)
                            percent = round(100 * got / max(wanted.size, 1), 1)
                            self.report({"phase": "download", "percent": percent, "message": message})
            except aiohttp.ClientError as e:
                part.unlink(missing_ok=True)
                raise ApplianceError(f"the download of {url} failed: {e}") from e
            except BaseException:
                part.unlink(missing_ok=True)
                raise
            if got != wanted.size or digest.hexdigest() != wanted.sha256:
                part.unlink(missing_ok=True)
                raise UpdateRefused(
                    f"{url} is not the bundle the signed index describes ({got} bytes, SHA-256 "
                    f"{digest.hexdigest()[:16]}…): refused"
                )
            part.replace(dest)
            return dest


def _release(release: Release) -> dict[str, Any]:
    return {
        "version": release.version,
        "min_version": release.min_version,
        "size": release.size,
        "notes": release.notes,
    }
