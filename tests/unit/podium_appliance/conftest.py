"""An appliance under a temporary root, its commands recorded by a real shell instead of systemd."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium_appliance.layout import Layout

from ...harness.applianceproc import record


@pytest.fixture
def appliance(tmp_path: Path) -> Layout:
    """A root with an appliance.toml whose system commands are recorded in ``<root>/commands.log``."""
    layout = Layout(tmp_path / "root")
    layout.etc.mkdir(parents=True)
    log = layout.root / "commands.log"
    names = [
        "network_apply",
        "network_reconfigure",
        "hostname_apply",
        "time_apply",
        "server_start",
        "bus_wait",
        "firstboot_wait",
    ]
    lines = ["[commands]"]
    placeholders = {"network_reconfigure": ["{interface}"], "hostname_apply": ["{hostname}"]}
    for name in names:
        argv = record(log, name, *placeholders.get(name, []))
        lines.append(f"{name} = {json.dumps(argv)}")  # a JSON array of strings is a TOML array
    layout.appliance_toml.write_text("\n".join(lines) + "\n")
    return layout


def commands(layout: Layout) -> list[str]:
    """The commands run so far."""
    log = layout.root / "commands.log"
    return log.read_text().splitlines() if log.exists() else []
