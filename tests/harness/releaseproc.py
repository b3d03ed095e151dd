"""An appliance under a root folder, as the updater sees it: releases installed from real bundles (each with
its own venv), the server run from ``opt/podium/current`` and stopped or started the way systemd would (by
tests/harness/service_standin.py), the updater run as its command or as its service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from podium_appliance.layout import Layout
from podium_appliance.setup.completion import Answers, write_server_config

from .serverproc import free_port
from .service_standin import alive

ADMIN = ("admin@example.org", "a long and unusual passphrase 42")
STANDIN = str(Path(__file__).with_name("service_standin.py"))


@dataclass
class Appliance:
    """One appliance root and the processes the tests started for it."""

    root: Path
    layout: Layout
    server_listen: str
    service: subprocess.Popen[bytes] | None = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def services(self) -> Path:
        return self.root / "services"

    def update(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        """``podium-appliance --root ROOT update ARGS`` from this repository's code (as root would run it)."""
        env = {**os.environ, **self.env, **(env or {})}
        return subprocess.run(
            self.update_argv(*args), capture_output=True, text=True, timeout=timeout, env=env
        )

    def update_argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "podium_appliance", "--root", str(self.layout.root), "update", *args]

    def current(self) -> str | None:
        try:
            return Path(os.readlink(self.layout.current)).name
        except FileNotFoundError:
            return None

    def server_pid(self) -> int | None:
        try:
            pid = int((self.services / "podium-server.pid").read_text())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def server_log(self) -> str:
        path = self.services / "podium-server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def set_up(self, database_url: str = "") -> None:
        """What the wizard's completion does for the server: its configuration (with ``database_url``, as
        an administrator would add it), then it starts."""
        write_server_config(self.layout, self.layout.settings(), Answers(*ADMIN))
        if database_url:
            config = self.layout.server_toml.read_text()
            self.layout.server_toml.write_text(
                config.replace("[admin]", f'database_url = "{database_url}"\n\n[admin]')
            )
        self._start_server()

    def wait_healthy(self, seconds: float = 60) -> None:
        import urllib.request

        deadline = time.monotonic() + seconds
        while True:
            try:
                with urllib.request.urlopen(f"http://{self.server_listen}/api/health", timeout=2) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"the server is not healthy: {self.server_log()[-3000:]}")
            time.sleep(0.1)

    async def calls(self, *calls: tuple[str, dict[str, Any]], sign_in: bool = True) -> list[Any]:
        """JSON-RPC calls on one WebSocket as the admin; the results (an error raises)."""
        url = f"ws://{self.server_listen}/api/"
        results = []
        async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
            todo = (
                [("session.signIn", {"email": ADMIN[0], "password": ADMIN[1]})] if sign_in else []
            ) + list(calls)
            for call_id, (method, params) in enumerate(todo, 1):
                await ws.send_json({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})
                while True:
                    message = await ws.receive()
                    if message.type != aiohttp.WSMsgType.TEXT:  # a server restarting closes its sockets
                        raise AssertionError(
                            f"{method}: the server closed the connection ({message.type.name})"
                        )
                    reply = json.loads(message.data)
                    if reply.get("id") == call_id:
                        break
                if "error" in reply:
                    raise AssertionError(f"{method}: {reply['error']}")
                results.append(reply["result"])
        return results[1:] if sign_in else results

    def call(self, *calls: tuple[str, dict[str, Any]], sign_in: bool = True) -> list[Any]:
        return asyncio.run(self.calls(*calls, sign_in=sign_in))

    def start_service(self) -> None:
        """The updater service, as systemd runs it; returns once its socket answers."""
        log = (self.root / "updater.log").open("ab")
        with log:
            env = {**os.environ, **self.env}
            # umask: the unit's UMask
            self.service = subprocess.Popen(
                self.update_argv("serve"), stdout=log, stderr=log, env=env, umask=0o077
            )
        deadline = time.monotonic() + 30
        while not self.layout.update_socket.exists():
            if self.service.poll() is not None or time.monotonic() > deadline:
                raise AssertionError((self.root / "updater.log").read_text())
            time.sleep(0.05)

    def stop_service(self) -> None:
        if self.service is not None and self.service.poll() is None:
            self.service.send_signal(signal.SIGTERM)
            try:
                self.service.wait(20)
            except subprocess.TimeoutExpired:
                self.service.kill()
                self.service.wait()
        self.service = None

    def stop(self) -> None:
        """Stop everything: the service, the server."""
        self.stop_service()
        subprocess.run(self.layout.settings().command("server_stop"), check=False)

    def keep(self, copy: Path) -> None:
        """Copy the appliance's files to ``copy`` (the server stopped meanwhile, so its database is whole),
        for :meth:`restore`."""
        self.stop()
        shutil.copytree(self.layout.root, copy, symlinks=True)
        self._start_server()

    def restore(self, copy: Path) -> None:
        """Put the files :meth:`keep` copied back in place of the appliance's own and start its server: the
        appliance as it was then, whatever happened since. Each release's venv was made at its own path, so
        a copy works only put back where it was taken."""
        self.stop()
        shutil.rmtree(self.layout.root)
        shutil.copytree(copy, self.layout.root, symlinks=True)
        self._start_server()

    def _start_server(self) -> None:
        if self.layout.server_toml.exists():
            subprocess.run(self.layout.settings().command("server_start"), check=True)
            self.wait_healthy()

    def snapshot(self) -> dict[str, Any]:
        """What must survive any update: the release running and the files of the data folder."""
        data = self.layout.server_data
        files = (
            sorted(str(p.relative_to(data)) for p in data.rglob("*") if p.is_file()) if data.exists() else []
        )
        return {"current": self.current(), "data": files}


def process_state(pid: int) -> str:
    """R, S, T (stopped), Z… from /proc, or '' when gone."""
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    return ""


def make_appliance(root: Path, keyring: Path, *, xenstore_vm: str = "", reserve_mib: int = 0) -> Appliance:
    """An empty appliance root that trusts ``keyring``; nothing installed, nothing set up."""
    layout = Layout(root / "root")
    services = root / "services"
    services.mkdir(parents=True)
    listen = f"127.0.0.1:{free_port()}"
    record = f'echo "$0 $*" >> "{root}/commands.log"'
    standin = [sys.executable, STANDIN, str(services)]
    server = [str(layout.current / "bin" / "podium-server"), "--config", str(layout.server_toml)]
    commands = {
        "server_start": [*standin, "start", "podium-server", "--", *server],
        "server_stop": [*standin, "stop", "podium-server"],
        "service_active": [*standin, "active", "{unit}"],
        "server_admin": ["{release}/bin/podium-server", "--config", "{config}"],
        "units_reload": ["sh", "-c", record, "units_reload"],
        "updater_restart": ["sh", "-c", record, "updater_restart"],
    }
    layout.etc.mkdir(parents=True)
    toml = [f'xenstore = "file"\n[server]\nlisten = "{listen}"\n[commands]']
    toml += [f"{name} = {json.dumps(argv)}" for name, argv in commands.items()]
    layout.appliance_toml.write_text("\n".join(toml) + "\n")
    layout.updates_toml.write_text(f'channel = "stable"\nreserve_mib = {reserve_mib}\nhealth_seconds = 60\n')
    layout.update_keyring.parent.mkdir(parents=True)
    layout.update_keyring.write_bytes(keyring.read_bytes())
    if xenstore_vm:
        layout.xenstore_standin.mkdir(parents=True)
        (layout.xenstore_standin / "vm").write_text(f"/vm/{xenstore_vm}")
    return Appliance(root, layout, listen)
