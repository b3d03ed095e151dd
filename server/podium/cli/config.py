"""Where ``podium register`` keeps the server, its token and the certificate choice: never a password.

``$XDG_CONFIG_HOME/podium/config.json`` (``~/.config`` when unset), mode 0600 in a 0700 directory, written
whole to a temporary file and renamed over the old one, so a crash never leaves half a file. Keys:
``server`` (URL), ``token``, ``clientId`` (lets the server hand the same client its token back),
``allowUnauthorized`` (what ``--au`` asked at registration) and ``fingerprint`` (the SHA-256 of the
certificate accepted then: later connections accept that certificate and no other).
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CliError, UsageError

_KNOWN = ("server", "token", "clientId", "allowUnauthorized", "fingerprint")


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """The configuration file of this user."""
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path(env.get("HOME") or Path.home()) / ".config")
    return Path(base) / "podium" / "config.json"


@dataclass
class Config:
    """The registration: server URL, token, client id and TLS choice (plus keys a newer version wrote)."""

    server: str | None = None
    token: str | None = None
    clientId: str | None = None  # named as the key in the file (xo-cli's names)
    allowUnauthorized: bool = False
    fingerprint: str | None = None
    other: dict[str, Any] = field(default_factory=dict)


def load(path: Path) -> Config:
    """The configuration, empty when there is none yet."""
    try:
        text = path.read_text()
        mode = path.stat().st_mode
    except FileNotFoundError:
        return Config()
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror}") from e
    try:
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
    except ValueError as e:
        raise UsageError(
            f"{path} is not a valid configuration ({e}): fix it, or remove it and register again"
        ) from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        print(f"warning: {path} holds a token and others may read it: chmod 600 {path}", file=sys.stderr)
    known = {k: data[k] for k in _KNOWN if k in data}
    return Config(**known, other={k: v for k, v in data.items() if k not in _KNOWN})


def save(path: Path, config: Config) -> None:
    """Write the configuration atomically, readable by its owner only (a failure says which file)."""
    data = {**config.other}
    for key in _KNOWN:
        value = getattr(config, key)
        if value not in (None, False):
            data[key] = value
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=path.parent)  # mode 0600
    except OSError as e:
        raise CliError(f"cannot write the configuration {path}: {e.strerror}") from e
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError):
            raise CliError(f"cannot write the configuration {path}: {e.strerror}") from e
        raise
