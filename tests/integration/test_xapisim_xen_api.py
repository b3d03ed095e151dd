"""Xen Orchestra's own XAPI client (npm ``xen-api``) against the simulator."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from ..harness.simproc import Sim

pytestmark = pytest.mark.integration

PROBE = Path(__file__).resolve().parent.parent / "node" / "xen_api_probe.mjs"


def probe(sim: Sim, url: str, *args: str) -> list[dict]:
    node = shutil.which("node")
    assert node, "node is installed by `make setup`"
    assert (PROBE.parent / "node_modules" / "xen-api").is_dir(), "run `make setup` to install tests/node"
    proc = subprocess.run(
        [node, str(PROBE), url, sim.user, sim.password, *args], capture_output=True, text=True, timeout=120
    )
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert proc.returncode == 0, (lines[-1:], proc.stderr[-2000:])
    return lines


def by_event(lines: list[dict], name: str) -> list[dict]:
    return [line for line in lines if line["event"] == name]


@pytest.mark.parametrize("transport", ["json-rpc", "xml-rpc"])
def test_xen_api_follows_the_master_and_reads_every_record(sim, transport):
    lines = probe(sim, sim.member().url, "--transport", transport)
    (connected,) = by_event(lines, "connected")
    assert connected["url"] == sim.master().url  # HOST_IS_SLAVE followed
    assert connected["paths"] == ["POST /jsonrpc" if transport == "json-rpc" else "POST /xmlrpc"]
    (synced,) = by_event(lines, "synced")
    counts = synced["counts"]
    assert counts["VM"] == 67 and counts["host"] == 2 and counts["SR"] == 8 and counts["VBD"] == 4
    assert "Async" not in counts and counts["message"] == 0
    assert "error" not in lines[-1]["event"] and lines[-1]["event"] == "done"


def test_xen_api_auto_transport_picks_json_rpc(sim):
    lines = probe(sim, sim.master().url)
    assert by_event(lines, "connected")[0]["paths"] == ["POST /jsonrpc"]


@pytest.mark.parametrize("mode", [[], ["--async"]], ids=["sync", "async"])
def test_xen_api_drives_a_vm_lifecycle_and_sees_each_state(sim, mode):
    actions = "hard_shutdown,start,clean_reboot,suspend,resume,pause,unpause,clean_shutdown"
    sim.ctl("POST", "/settings", {"op_seconds": 0.3})  # longer than the client's 50 ms debounce
    lines = probe(sim, sim.master().url, "first", "--actions", actions, *mode)
    states = [line["power_state"] for line in by_event(lines, "power_state")]
    assert states == ["Halted", "Running", "Running", "Suspended", "Running", "Paused", "Running", "Halted"]
    for line in by_event(lines, "power_state"):
        assert line["power_state"] == line["expected"]
    assert all(r["result"] in ("", None) for r in by_event(lines, "call_result"))
    updates = by_event(lines, "vm_update")
    assert any(u["current_operations"] for u in updates)  # operations are visible while they run
