"""Run ``python -m xapisim`` as a real process for tests, and talk to it over its wire protocols.

Tests call a pool through :func:`login` and :func:`call` (JSON-RPC on its master, or on the host at a
URL they name) and expect failures with :func:`fails`; the fixtures that start simulators are in
``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

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

    def context(self) -> ssl.SSLContext | None:
        """How tests reach its hosts: None over HTTP; with ``--tls``, a context that takes the hosts'
        self-signed certificates (each host has its own; tests of verification make their own clients)."""
        return ssl._create_unverified_context() if self.fingerprint else None

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


def start_sim(
    *args: str, password: str | None = PASSWORD, timeout: float = 60.0, env: dict[str, str] | None = None
) -> Sim:
    """Start the simulator and wait for ``ready``; ``env`` adds to its environment."""
    cmd = [sys.executable, "-m", "xapisim", "--auth-failure-delay", "0.2", *args]
    if password is not None:
        cmd += ["--password", password]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
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


def jsonrpc(
    url: str,
    method: str,
    *params: Any,
    version: str | None = "2.0",
    timeout: float = 30,
    context: ssl.SSLContext | None = None,
) -> Any:
    """One JSON-RPC call; returns the result or raises :class:`XapiFailure`."""
    body: dict[str, Any] = {"method": method, "params": list(params), "id": next(_ids)}
    if version:
        body["jsonrpc"] = version
    req = urllib.request.Request(url + "/jsonrpc", data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
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


def login(sim: Sim, pool: int = 0, url: str | None = None) -> str:
    """A new session on a pool's master, or on the host at ``url`` (a member answers HOST_IS_SLAVE)."""
    target = url or sim.master(pool).url
    return str(jsonrpc(target, "session.login_with_password", sim.user, sim.password, context=sim.context()))


def master_session(sim: Sim, pool: int = 0) -> tuple[str, str]:
    """A pool master's URL and a new session on it, for tests that talk to the host's URL directly."""
    return sim.master(pool).url, login(sim, pool)


def call(sim: Sim, method: str, *params: Any, pool: int = 0, url: str | None = None) -> Any:
    """One JSON-RPC call on a pool's master, or on the host at ``url``."""
    return jsonrpc(url or sim.master(pool).url, method, *params, context=sim.context())


def fails(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[str]:
    """The XAPI error description of a call that must fail."""
    with pytest.raises(XapiFailure) as e:
        fn(*args, **kwargs)
    return e.value.details


def storage(url: str, s: str) -> str:
    """The first SR of the pool at ``url`` that holds disks (neither ISOs nor removable devices)."""
    srs = sorted(jsonrpc(url, "SR.get_all_records", s).items())
    return next(r for r, v in srs if v["content_type"] != "iso" and v["type"] != "udev")


def vdi_fields(sr: str, size: int, **fields: Any) -> dict[str, Any]:
    """What ``VDI.create`` takes for a user disk of ``size`` bytes on ``sr``; ``fields`` change it."""
    return {
        "name_label": "data",
        "name_description": "",
        "SR": sr,
        "virtual_size": str(size),
        "type": "user",
        "sharable": False,
        "read_only": False,
        "other_config": {},
        "xenstore_data": {},
        "sm_config": {},
        "tags": [],
        **fields,
    }


def vbd_fields(vm: str, vdi: str, **fields: Any) -> dict[str, Any]:
    """What ``VBD.create`` takes to plug disk ``vdi`` into ``vm`` read-write, at the first free position;
    ``fields`` change it (``type="CD"`` …)."""
    return {
        "VM": vm,
        "VDI": vdi,
        "userdevice": "autodetect",
        "bootable": False,
        "mode": "RW",
        "type": "Disk",
        "unpluggable": True,
        "empty": False,
        "other_config": {},
        "qos_algorithm_type": "",
        "qos_algorithm_params": {},
        **fields,
    }


def raw_post(url: str, path: str, body: bytes, content_type: str = "text/xml") -> tuple[int, str, bytes]:
    """POST raw bytes; returns status, content type and body (errors included)."""
    req = urllib.request.Request(url + path, data=body, method="POST")
    req.add_header("Content-Type", content_type)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Content-Type"], e.read()
