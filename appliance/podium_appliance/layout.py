"""Where the appliance keeps things, under a root prefix, and its own settings (``etc/podium/appliance.toml``).

Every path the appliance reads or writes is ``Layout(root).<name>``: on the box ``root`` is ``/``; tests and a
laptop use a folder, so nothing changes on the machine's own ``/etc`` or network. The commands that act on
the running system (reload nginx, start a service, apply the network) are settings too, argv lists with
``{placeholders}``; their defaults are the systemd commands of the appliance.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ApplianceError

#: What the appliance runs on the box; a test's appliance.toml replaces any of them.
DEFAULT_COMMANDS: dict[str, list[str]] = {
    "proxy_test": ["nginx", "-t", "-q"],
    # try-reload: at first boot nginx is not started yet (it starts after podium-firstboot)
    "proxy_reload": ["systemctl", "try-reload-or-restart", "nginx.service"],
    "server_start": ["systemctl", "enable", "--now", "podium-server.service"],
    "network_apply": ["networkctl", "reload"],
    "network_reconfigure": ["networkctl", "reconfigure", "{interface}"],
    "hostname_apply": ["hostnamectl", "set-hostname", "{hostname}"],
    "time_apply": ["systemctl", "try-restart", "systemd-timesyncd.service"],
    "service_active": ["systemctl", "is-active", "--quiet", "{unit}"],
    # the first boot starts before the system bus (see podium-firstboot.service); the steps that talk to
    # networkd or timedated first wait for it: starting the bus's socket waits until it listens
    "bus_wait": ["systemctl", "start", "dbus.socket"],
    # the wizard's service starts beside the first boot's and waits for it to be done (a oneshot)
    "firstboot_wait": ["systemctl", "start", "podium-firstboot.service"],
    "server_admin": [
        "runuser",
        "-u",
        "podium",
        "--",
        "{release}/bin/podium-server",
        "--config",
        "{config}",
    ],
    # the updater
    "server_stop": ["systemctl", "stop", "podium-server.service"],
    "units_reload": ["systemctl", "daemon-reload"],
    "updater_restart": ["systemctl", "--no-block", "try-restart", "podium-updater.service"],
    "venv_create": ["python3", "-m", "venv", "{path}"],
}


@dataclass(frozen=True)
class Settings:
    """The appliance's own settings: ports, addresses of its services, the commands it runs."""

    server_listen: str = "127.0.0.1:8000"
    wizard_listen: str = "127.0.0.1:8001"
    http_port: int = 80
    https_port: int = 443
    proxy_listen: tuple[str, ...] = ()  # nginx's addresses; empty: all (IPv4, and IPv6 when present)
    interface: str = "eth0"
    network_confirm_seconds: float = 120.0
    address_wait_seconds: float = 10.0  # at first boot, for the network's first address (the certificate's)
    xenstore: str = "auto"  # auto (xenstore-read when present), file (the stand-in folder), none
    services: tuple[str, ...] = ("nginx.service", "podium-server.service")
    commands: dict[str, list[str]] = field(default_factory=lambda: dict(DEFAULT_COMMANDS))

    def command(self, name: str, **values: str) -> list[str]:
        """The argv of a command, its ``{placeholders}`` filled in."""
        return [part.format(**values) for part in self.commands[name]]


class Layout:
    """The appliance's files under a root prefix."""

    def __init__(self, root: Path | str = "/") -> None:
        self.root = Path(root)

    def path(self, relative: str) -> Path:
        """A path under the root (``relative`` as it would be on the box, without the leading /)."""
        return self.root / relative.lstrip("/")

    # Configuration (etc)
    @property
    def etc(self) -> Path:
        return self.path("etc/podium")

    @property
    def appliance_toml(self) -> Path:
        return self.etc / "appliance.toml"

    @property
    def server_toml(self) -> Path:
        return self.etc / "podium.toml"

    @property
    def tls_dir(self) -> Path:
        return self.etc / "tls"

    @property
    def tls_cert(self) -> Path:
        return self.tls_dir / "podium.crt"

    @property
    def tls_key(self) -> Path:
        return self.tls_dir / "podium.key"

    @property
    def nginx_conf(self) -> Path:
        return self.path("etc/nginx/conf.d/podium.conf")

    @property
    def issue(self) -> Path:
        return self.path("etc/issue.d/podium.issue")

    @property
    def network_file(self) -> Path:
        return self.path("etc/systemd/network/10-podium.network")

    @property
    def hostname(self) -> Path:
        return self.path("etc/hostname")

    @property
    def hosts(self) -> Path:
        return self.path("etc/hosts")

    @property
    def timezone(self) -> Path:
        return self.path("etc/timezone")

    @property
    def localtime(self) -> Path:
        return self.path("etc/localtime")

    @property
    def timesyncd_conf(self) -> Path:
        return self.path("etc/systemd/timesyncd.conf.d/podium.conf")

    @property
    def updates_toml(self) -> Path:
        return self.etc / "updates.toml"

    # Releases (opt) and the updater
    @property
    def releases(self) -> Path:
        """One folder per installed release, ``releases/<version>``, each with its own venv."""
        return self.path("opt/podium/releases")

    @property
    def current(self) -> Path:
        """The symlink to the running release (``releases/<version>``), switched by an atomic rename."""
        return self.path("opt/podium/current")

    @property
    def update_keyring(self) -> Path:
        """The trusted signing keys shipped in the image (read-only)."""
        return self.path("usr/share/podium/update-keyring.json")

    @property
    def update_state(self) -> Path:
        """The updater's own state: journal, accepted keys, downloads, database backups."""
        return self.path("var/lib/podium-updater")

    @property
    def update_socket(self) -> Path:
        return self.path("run/podium-updater.sock")

    # State (var/lib)
    @property
    def server_data(self) -> Path:
        return self.path("var/lib/podium")

    @property
    def state(self) -> Path:
        return self.path("var/lib/podium-appliance")

    @property
    def setup_code(self) -> Path:
        return self.state / "setup-code"

    @property
    def setup_complete(self) -> Path:
        """The wizard's lock, written last when setup completes (the admin's e-mail in it); never removed."""
        return self.state / "setup-complete"

    def setup_is_complete(self) -> bool:
        """Setup was completed: the wizard is locked for good."""
        return self.setup_complete.exists()

    @property
    def network_pending(self) -> Path:
        return self.state / "network-pending.json"

    @property
    def xenstore_standin(self) -> Path:
        return self.state / "xenstore"

    def settings(self) -> Settings:
        """The appliance's settings: its appliance.toml over the defaults."""
        data = read_toml(self.appliance_toml)
        return Settings() if data is None else _settings(data, self.appliance_toml)


def _settings(data: dict[str, Any], source: Path) -> Settings:
    def table(name: str) -> dict[str, Any]:
        value = data.get(name, {})
        if not isinstance(value, dict):
            raise ApplianceError(f"{source}: [{name}] must be a table")
        return value

    server, wizard, proxy, network = table("server"), table("wizard"), table("proxy"), table("network")
    commands = dict(DEFAULT_COMMANDS)
    for name, argv in table("commands").items():
        if name not in DEFAULT_COMMANDS:
            raise ApplianceError(f"{source}: unknown command {name!r} (known: {', '.join(DEFAULT_COMMANDS)})")
        if not (isinstance(argv, list) and argv and all(isinstance(a, str) for a in argv)):
            raise ApplianceError(f"{source}: command {name!r} must be a non-empty list of strings")
        commands[name] = argv
    try:
        return Settings(
            server_listen=str(server.get("listen", Settings.server_listen)),
            wizard_listen=str(wizard.get("listen", Settings.wizard_listen)),
            http_port=int(proxy.get("http_port", Settings.http_port)),
            https_port=int(proxy.get("https_port", Settings.https_port)),
            proxy_listen=tuple(str(a) for a in proxy.get("listen", ())),
            interface=str(network.get("interface", Settings.interface)),
            network_confirm_seconds=float(
                wizard.get("network_confirm_seconds", Settings.network_confirm_seconds)
            ),
            address_wait_seconds=float(network.get("address_wait_seconds", Settings.address_wait_seconds)),
            xenstore=str(data.get("xenstore", Settings.xenstore)),
            services=tuple(data.get("services", Settings.services)),
            commands=commands,
        )
    except (TypeError, ValueError) as e:
        raise ApplianceError(f"{source}: {e}") from e


def read_toml(path: Path) -> dict[str, Any] | None:
    """A TOML settings file's tables, None when it does not exist, or an error naming the file."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise ApplianceError(f"cannot read {path}: {e.strerror}") from e
    except tomllib.TOMLDecodeError as e:
        raise ApplianceError(f"{path} is not valid TOML: {e}") from e


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename, a new file) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and folder below ``root`` to disk."""
    for folder, _, files in os.walk(root):
        for name in files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                continue
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(folder))


def write_atomic(path: Path, data: bytes | str, mode: int = 0o644) -> None:
    """Replace a file as a whole (a temporary file beside it, fsync, rename): readers see old or new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)  # the umask must not widen or narrow what was asked
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
