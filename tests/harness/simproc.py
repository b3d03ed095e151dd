"""Run ``python -m xapisim`` as a real process for tests, and talk to it over its wire protocols."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
BUNDLED_DB = ROOT / "server" / "xapisim" / "data" / "tampa-poolof16and23-xapi-db.xml"
TEST_DBS = ROOT / "tests" / "data" / "xapi-db"
REAL_DUMPS = sorted([BUNDLED_DB, *TEST_DBS.glob("*.xml")])
PASSWORD = "sim-secret"


@dataclass
class SimHost:
    """One host line of the simulator's start-up output."""

    pool: str
    name: str
    url: str
    master: bool


@dataclass
class Sim:
    """A running simulator process."""

    proc: subprocess.Popen[str]
    log_path: Path
    hosts: list[SimHost] = field(default_factory=list)
    control: str = ""
    fingerprint: str = ""
    user: str = "root"
    password: str = PASSWORD

    def master(self, pool: int = 0) -> SimHost:
        """The master host of a pool (by order of --db)."""
        names = list(dict.fromkeys(h.pool for h in self.hosts))
        return next(h for h in self.hosts if h.pool == names[pool] and h.master)

    def member(self, pool: int = 0) -> SimHost:
        """A member host of a pool."""
        names = list(dict.fromkeys(h.pool for h in self.hosts))
        return next(h for h in self.hosts if h.pool == names[pool] and not h.master)

    def ctl(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the control surface."""
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.control + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=60) as resp:
            return json.loads(resp.read())

    def log(self) -> str:
        """What the simulator has logged so far."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """SIGTERM, then wait; returns the exit status (0 when it stopped cleanly)."""
        terminate(self.proc)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.log_path.unlink(missing_ok=True)
        return self.proc.returncode


def terminate(proc: subprocess.Popen[Any], timeout: float = 15) -> int:
    """Stop a process as a service manager would: SIGTERM, a grace period, then SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def start_sim(*args: str, password: str | None = PASSWORD, timeout: float = 60.0) -> Sim:
    """Start the simulator and wait for ``ready``."""
    cmd = [sys.executable, "-m", "xapisim", "--auth-failure-delay", "0.2", *args]
    if password is not None:
        cmd += ["--password", password]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    fd, log_name = tempfile.mkstemp(prefix="xapisim-", suffix=".log")
    with os.fdopen(fd, "w") as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file, text=True, env=env)
    sim = Sim(proc, Path(log_name), password=password or "")
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            status = proc.wait()
            proc.stdout.close()
            raise RuntimeError(f"simulator exited with {status}: {sim.log()}")
        words = shlex.split(line)
        if words[0] == "host":
            sim.hosts.append(SimHost(words[1], words[2], words[3], words[4] == "master"))
        elif words[0] == "control":
            sim.control = words[1]
        elif words[0] == "credentials":
            sim.user, sim.password = words[1], words[2]
        elif words[0] == "tls-fingerprint":
            sim.fingerprint = words[1]
        elif words[0] == "ready":
            return sim
    sim.stop()
    raise RuntimeError("simulator did not become ready")


_ids = iter(range(1, 1 << 30))


def jsonrpc(url: str, method: str, *params: Any, version: str | None = "2.0", timeout: float = 30) -> Any:
    """One JSON-RPC call; returns the result or raises :class:`XapiFailure`."""
    body: dict[str, Any] = {"method": method, "params": list(params), "id": next(_ids)}
    if version:
        body["jsonrpc"] = version
    req = urllib.request.Request(url + "/jsonrpc", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        assert resp.headers["Content-Type"] == "application/json"
        reply = json.loads(resp.read())
    if reply.get("error"):
        err = reply["error"]
        raise XapiFailure([err["message"], *err["data"]] if isinstance(err, dict) else err)
    return reply["result"]


class XapiFailure(Exception):
    """A XAPI failure returned over JSON-RPC."""

    def __init__(self, details: list[str]) -> None:
        super().__init__(details)
        self.details = details


def raw_post(url: str, path: str, body: bytes, content_type: str = "text/xml") -> tuple[int, str, bytes]:
    """POST raw bytes; returns status, content type and body (errors included)."""
    req = urllib.request.Request(url + path, data=body, method="POST")
    req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()
