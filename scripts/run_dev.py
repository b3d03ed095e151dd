"""`make run`: the simulated pool and the Podium server connected to it, until Ctrl-C.

State lives in .make/run/ (the server's data directory, the generated passwords, mode 0600), so a second
run finds the same admin and the same pool.
"""

from __future__ import annotations

import asyncio
import ctypes
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
STATE = ROOT / ".make" / "run"
SIM_PORT = int(os.environ.get("SIM_PORT", "8080"))
LISTEN = os.environ.get("PODIUM_LISTEN", "127.0.0.1:8000")


def secret(name: str, env: str) -> str:
    """A password from the environment, or generated once and kept in a 0600 file."""
    if os.environ.get(env):
        return os.environ[env]
    path = STATE / name
    if not path.exists():
        STATE.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(12))
    return path.read_text().strip()


def die_with_parent() -> None:
    """In a child: take SIGINT and SIGTERM again (this parent blocks them to wait for them), and be sent
    SIGTERM when `make run` goes, however it goes (Linux's PR_SET_PDEATHSIG)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # 1 = PR_SET_PDEATHSIG


def start_sim(password: str) -> tuple[subprocess.Popen[str], str]:
    argv = [sys.executable, "-m", "xapisim", "--port", str(SIM_PORT), "--password", password]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, preexec_fn=die_with_parent)
    master = ""
    assert proc.stdout is not None
    for line in proc.stdout:
        words = line.split()
        if words[:1] == ["host"] and words[-1] == "master":
            master = words[-2]
        if words[:1] == ["ready"]:
            return proc, master
    raise SystemExit(f"the simulator did not start (exit {proc.wait()})")


def start_server(email: str, password: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PODIUM_LISTEN": LISTEN,
        "PODIUM_DATA_DIR": str(STATE / "data"),
        "PODIUM_ADMIN_EMAIL": email,
        "PODIUM_ADMIN_PASSWORD": password,
    }
    proc = subprocess.Popen([sys.executable, "-m", "podium"], env=env, preexec_fn=die_with_parent)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://{LISTEN}/api/health", timeout=1):
                return proc
        except OSError:
            if proc.poll() is not None:
                raise SystemExit("the server did not start") from None
            time.sleep(0.2)
    raise SystemExit("the server did not answer")


async def connect_pool(email: str, password: str, master: str, sim_password: str) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://{LISTEN}/api/") as ws:

        async def call(method: str, params: dict[str, object]) -> object:
            await ws.send_str(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            reply = json.loads((await ws.receive()).data)
            while "id" not in reply:  # notifications
                reply = json.loads((await ws.receive()).data)
            if "error" in reply:
                raise SystemExit(f"{method}: {reply['error']['message']}")
            return reply["result"]

        await call("session.signIn", {"email": email, "password": password})
        servers = await call("server.getAll", {})
        assert isinstance(servers, list)
        if not any(s["host"] == master for s in servers):
            await call(
                "server.add",
                {"host": master, "username": "root", "password": sim_password, "label": "simulated pool"},
            )


def main() -> None:
    sim_password = secret("sim-password", "XAPISIM_PASSWORD")
    email = os.environ.get("PODIUM_ADMIN_EMAIL", "admin@podium.local")
    admin_password = secret("admin-password", "PODIUM_ADMIN_PASSWORD")
    sim, master = start_sim(sim_password)
    server = start_server(email, admin_password)
    try:
        asyncio.run(connect_pool(email, admin_password, master, sim_password))
        print(
            f"""
Podium is running on http://{LISTEN}  (API: ws://{LISTEN}/api/, health: http://{LISTEN}/api/health)
  sign in as:   {email}
  password:     {admin_password}   (kept in {STATE / "admin-password"})
  its pool:     the simulated 2-host pool, master {master} (root / {sim_password})
  the CLI:      .venv/bin/podium register http://{LISTEN} {email}   (then: .venv/bin/podium --help)
Ctrl-C stops both.""",
            flush=True,
        )
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        for proc in (server, sim):
            proc.send_signal(signal.SIGTERM)
        for proc in (server, sim):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


if __name__ == "__main__":
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    main()
