"""The box's tests: an appliance root whose nginx commands are recorded, and a certificate for it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from podium_appliance.box.tls_install import generate_self_signed
from podium_appliance.layout import Layout, Settings


def log_of(layout: Layout) -> list[str]:
    """The recorded commands' names, in order."""
    path = layout.root / "commands.log"
    return path.read_text().splitlines() if path.exists() else []


def toml_list(argv: list[str]) -> str:
    """An argv as a TOML array."""
    return json.dumps(argv)  # JSON's strings are TOML's basic strings


def recorded(layout: Layout, name: str, status: int = 0, stderr: str = "") -> list[str]:
    """A command that logs its name in <root>/commands.log, prints ``stderr`` there and exits ``status``."""
    script = f'echo {name} >> {layout.root}/commands.log; printf "%s" "$1" >&2; exit {status}'
    return ["sh", "-c", script, name, stderr]


def configure(layout: Layout, test: list[str] | None = None, reload: list[str] | None = None) -> Settings:
    """An appliance.toml on loopback whose proxy commands are recorded; its settings."""
    layout.etc.mkdir(parents=True, exist_ok=True)
    layout.appliance_toml.write_text(
        '[proxy]\nhttp_port = 8080\nhttps_port = 8443\nlisten = ["127.0.0.1"]\n[commands]\n'
        f"proxy_test = {toml_list(test or recorded(layout, 'test'))}\n"
        f"proxy_reload = {toml_list(reload or recorded(layout, 'reload'))}\n"
    )
    return layout.settings()


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    """An empty appliance root."""
    return Layout(tmp_path / "root")


@pytest.fixture
def pair() -> tuple[bytes, bytes]:
    """A self-signed certificate and its key, for podium.example.net on loopback."""
    return generate_self_signed("podium.example.net", ["127.0.0.1"])
