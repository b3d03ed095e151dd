"""Settings: a TOML file (``--config PATH``), then environment variables, then the embedded defaults.

| setting | TOML | environment | default |
|---|---|---|---|
| listen address | ``listen = "host:port"`` | ``PODIUM_LISTEN`` | ``127.0.0.1:8000`` |
| data directory | ``data_dir`` | ``PODIUM_DATA_DIR`` | ``./data`` |
| database URL | ``database_url`` | ``PODIUM_DATABASE_URL`` | a SQLite file in the data directory |
| first admin | ``[admin] email, password`` | ``PODIUM_ADMIN_EMAIL``, ``PODIUM_ADMIN_PASSWORD`` | a random password, printed once |
| … or its hash | ``[admin] password_hash`` (argon2) | ``PODIUM_ADMIN_PASSWORD_HASH`` | (the appliance's wizard writes one) |
| HTTPS | ``[tls] cert, key`` (PEM files) | ``PODIUM_TLS_CERT``, ``PODIUM_TLS_KEY`` | plain HTTP (the appliance puts nginx in front) |
"""

from __future__ import annotations

import os
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import PodiumError


class ConfigError(PodiumError):
    """A setting that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Everything the server needs to start."""

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    database_url: str = ""
    admin_email: str = ""
    admin_password: str = ""
    admin_password_hash: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    updater_socket: str = "/run/podium-updater.sock"  # the appliance's updater service (updater.* methods)

    @property
    def db_url(self) -> str:
        """The database URL, the SQLite file in the data directory unless one was given."""
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'podium.db'}"

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server side of HTTPS (TLS 1.2 and later) when a certificate and key are set, else None."""
        if not self.tls_cert and not self.tls_key:
            return None
        if not (self.tls_cert and self.tls_key):
            raise ConfigError("HTTPS needs both a certificate and its key (tls cert and key)")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except OSError as e:
            raise ConfigError(f"cannot read the TLS certificate or key: {e.strerror or e}") from e
        except ssl.SSLError as e:
            raise ConfigError(f"the TLS certificate and key cannot be used together: {e.reason or e}") from e
        return context


def parse_listen(text: str) -> tuple[str, int]:
    """``host:port`` (``[::1]:8000`` for IPv6) into its parts."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not host:
        raise ConfigError(f"listen address {text!r}: expected host:port, e.g. 127.0.0.1:8000")
    try:
        number = int(port)
    except ValueError:
        raise ConfigError(f"listen address {text!r}: the port is not a number") from None
    if not 0 <= number <= 65535:
        raise ConfigError(f"listen address {text!r}: the port must be from 0 to 65535")
    return host.strip("[]"), number


def load(path: Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read the settings from a TOML file (optional) and the environment."""
    env = dict(os.environ if env is None else env)
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(path.read_text())
        except OSError as e:
            raise ConfigError(f"cannot read the configuration {path}: {e.strerror}") from e
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path} is not valid TOML: {e}") from e
    admin = data.get("admin", {}) if isinstance(data.get("admin"), dict) else {}
    tls = data.get("tls", {}) if isinstance(data.get("tls"), dict) else {}
    listen = env.get("PODIUM_LISTEN") or data.get("listen") or "127.0.0.1:8000"
    host, port = parse_listen(str(listen))
    password_hash = str(env.get("PODIUM_ADMIN_PASSWORD_HASH") or admin.get("password_hash") or "")
    if password_hash and not password_hash.startswith("$argon2"):
        raise ConfigError("admin password_hash: must be an argon2 hash ($argon2id$...)")
    return Settings(
        host=host,
        port=port,
        data_dir=Path(env.get("PODIUM_DATA_DIR") or data.get("data_dir") or "data"),
        database_url=str(env.get("PODIUM_DATABASE_URL") or data.get("database_url") or ""),
        admin_email=str(env.get("PODIUM_ADMIN_EMAIL") or admin.get("email") or ""),
        admin_password=str(env.get("PODIUM_ADMIN_PASSWORD") or admin.get("password") or ""),
        admin_password_hash=password_hash,
        tls_cert=str(env.get("PODIUM_TLS_CERT") or tls.get("cert") or ""),
        tls_key=str(env.get("PODIUM_TLS_KEY") or tls.get("key") or ""),
        updater_socket=str(
            env.get("PODIUM_UPDATER_SOCKET") or data.get("updater_socket") or Settings.updater_socket
        ),
    )
