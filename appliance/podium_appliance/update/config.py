"""The updater's settings, ``etc/podium/updates.toml``: the channel chosen at setup and how updates are made.

channel = "stable"            # stable or latest
url = "https://…/"            # the update server (one folder per channel holding index.json)
proxy = ""                    # an HTTP proxy to reach it, if the site needs one
check_hours = 6               # how often the service looks for a new release (0: only on demand)
snapshot = true               # snapshot the appliance's own VM before an upgrade (when a pool holds it)
snapshots_keep = 2            # at most this many such snapshots are kept
keep_releases = 3             # installed releases kept (the running one included)
health_seconds = 120          # how long a new release has to pass its health check
reserve_mib = 256             # disk space that must remain free after an install
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import ApplianceError
from ..layout import Layout, read_toml

CHANNELS = ("stable", "latest")


@dataclass(frozen=True)
class UpdateConfig:
    """The updater's settings, defaults where updates.toml is silent."""

    channel: str = "stable"
    url: str = ""
    proxy: str = ""
    check_hours: float = 6.0
    snapshot: bool = True
    snapshots_keep: int = 2
    keep_releases: int = 3
    health_seconds: float = 120.0
    reserve_mib: int = 256

    @classmethod
    def load(cls, layout: Layout) -> UpdateConfig:
        """updates.toml over the defaults; a clear error for a wrong value."""
        path = layout.updates_toml
        data = read_toml(path)
        if data is None:
            return cls()
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ApplianceError(
                f"{path}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})"
            )
        values: dict[str, Any] = {}
        for name, value in data.items():
            default = getattr(cls, name)
            if isinstance(default, bool):
                ok = isinstance(value, bool)
            elif isinstance(default, int):
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif isinstance(default, float):
                ok = isinstance(value, int | float) and not isinstance(value, bool)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise ApplianceError(f"{path}: {name} must be a {type(default).__name__}, not {value!r}")
            values[name] = float(value) if isinstance(default, float) else value
        config = cls(**values)
        if config.channel not in CHANNELS:
            raise ApplianceError(
                f"{path}: channel must be one of {', '.join(CHANNELS)}, not {config.channel!r}"
            )
        if config.keep_releases < 2:
            raise ApplianceError(f"{path}: keep_releases must be at least 2 (the running one and a way back)")
        if config.snapshots_keep < 1 or config.health_seconds <= 0 or config.reserve_mib < 0:
            raise ApplianceError(f"{path}: snapshots_keep ≥ 1, health_seconds > 0 and reserve_mib ≥ 0")
        if config.url and not config.url.startswith(("https://", "http://")):
            raise ApplianceError(f"{path}: url must be an http(s) URL, not {config.url!r}")
        return config
