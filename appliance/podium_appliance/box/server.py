"""The Podium server on this box, as the appliance's other parts reach it: its health on loopback, its
JSON-RPC API (called as any client calls it), and its admin command (``podium-server`` of a given release,
as the server's own user).

Setup starts the server and adds the first pool through it, ``podium-appliance reset-admin-password`` gives a
user a new password with it, ``podium-appliance check`` asks its health, and the updater checks a new release
with it.
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from pathlib import Path
from typing import Any

from ..errors import ApplianceError
from ..layout import Layout, Settings

# aiohttp is imported where it is used: the first-boot service imports this module at every boot and needs
# it only when the deploy keys complete the setup.


def health_url(settings: Settings) -> str:
    """Where the server answers its health check (loopback, plain HTTP)."""
    return f"http://{settings.server_listen}/api/health"


async def wait_healthy(settings: Settings, seconds: float = 60.0) -> None:
    """Wait until the server answers its health check on loopback."""
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(health_url(settings), timeout=aiohttp.ClientTimeout(total=2)) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)
    raise ApplianceError(f"the Podium server did not answer within {seconds:.0f} s; see its log")


class ServerApi:
    """A JSON-RPC call or two on the server's WebSocket API, as any client would make them."""

    def __init__(self, settings: Settings) -> None:
        self.url = f"ws://{settings.server_listen}/api/"
        self.ids = itertools.count(1)

    async def __aenter__(self) -> ServerApi:
        import aiohttp

        self.http = aiohttp.ClientSession()
        try:
            self.ws = await self.http.ws_connect(self.url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        except (aiohttp.ClientError, OSError) as e:
            await self.http.close()
            raise ApplianceError(f"cannot reach the Podium server's API: {e}") from e
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.ws.close()
        await self.http.close()

    async def call(self, method: str, params: dict[str, Any]) -> Any:
        """The result, or an ApplianceError with the server's message."""
        call_id = next(self.ids)
        await self.ws.send_json({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})
        while True:
            msg = await asyncio.wait_for(self.ws.receive_json(), 60)
            if msg.get("id") == call_id:
                break
        if "error" in msg:
            raise ApplianceError(f"{method}: {msg['error'].get('message', 'failed')}")
        return msg["result"]


def admin_command(layout: Layout, settings: Settings, release: Path) -> list[str]:
    """The argv of ``podium-server`` of ``release`` on the server's configuration, as the server's user
    (the ``server_admin`` command); its subcommand and arguments follow."""
    return settings.command("server_admin", config=str(layout.server_toml), release=str(release))


def reset_password(layout: Layout, settings: Settings, email: str, password: str = "") -> str:
    """Give a user of the server a new password (a random one unless given), through ``podium-server
    reset-password`` of the running release; returns the password. The server's message on failure."""
    argv = [*admin_command(layout, settings, layout.current), "reset-password", email]
    if password:
        argv.append("--password-stdin")
    done = subprocess.run(
        argv,
        input=password + "\n" if password else "",
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        said = done.stderr.strip().splitlines()
        raise ApplianceError(said[-1].removeprefix("podium-server: ") if said else "the reset failed")
    return password or done.stdout.strip()
