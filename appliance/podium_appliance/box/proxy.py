"""nginx in front of the appliance: its configuration (setup or ready mode), tested before it is reloaded.

The configuration is rendered from ``templates/nginx/podium.conf.j2`` into ``Layout.nginx_conf`` (included
in nginx's http context). Two modes: ``setup`` sends everything to the first-boot wizard, ``ready`` to
the Podium server, with HSTS. Every change is checked with ``nginx -t`` (the ``proxy_test`` command)
and undone if nginx refuses it; only then is nginx reloaded (``proxy_reload``), which keeps open
connections (WebSockets, transfers) on the old workers until they end.

Which addresses nginx listens on: all (IPv4, and IPv6 when the kernel has it) unless appliance.toml's
``[proxy] listen`` gives a list (tests use ``["127.0.0.1"]``).
"""

from __future__ import annotations

import functools
import re
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..errors import ApplianceError
from ..layout import Layout, Settings, write_atomic
from . import system

if TYPE_CHECKING:
    import jinja2

#: The modes of the configuration.
MODES = ("setup", "ready")
#: The first line of a rendered configuration starts so; the mode follows.
MARKER = "# podium-proxy mode="

_UPSTREAM = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]):[0-9]{1,5}")
_SERVER_NAME = re.compile(r"[A-Za-z0-9*_.-]+")
_ADDRESS = re.compile(r"[0-9.]+|\*|\[[0-9A-Fa-f:.]+\]")


@functools.cache
def _templates() -> jinja2.Environment:
    # made on first use: the first-boot service imports this module at every boot and seldom renders
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("podium_appliance.box", "templates"),
        autoescape=False,  # nginx's configuration, not HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(
    layout: Layout,
    settings: Settings,
    mode: str,
    server_name: str = "_",
    addresses: Sequence[str] | None = None,
) -> str:
    """nginx's configuration for ``mode`` ("setup" or "ready"), listening on ``addresses``."""
    if mode not in MODES:
        raise ApplianceError(f"unknown proxy mode {mode!r}: use one of {', '.join(MODES)}")
    template = _templates().get_template("nginx/podium.conf.j2")
    return template.render(
        mode=mode,
        server_name=_checked(_SERVER_NAME, server_name, "server name"),
        addresses=[_checked(_ADDRESS, a, "listen address") for a in addresses or listen_addresses(settings)],
        http_port=_port(settings.http_port, "http_port"),
        https_port=_port(settings.https_port, "https_port"),
        port_suffix="" if settings.https_port == 443 else f":{settings.https_port}",
        tls_cert=layout.tls_cert.absolute(),
        tls_key=layout.tls_key.absolute(),
        server_upstream=_checked(_UPSTREAM, settings.server_listen, "the server's listen address"),
        wizard_upstream=_checked(_UPSTREAM, settings.wizard_listen, "the wizard's listen address"),
    )


def listen_addresses(settings: Settings) -> list[str]:
    """Where nginx listens: appliance.toml's ``[proxy] listen``, or every address of the machine."""
    if settings.proxy_listen:
        return list(settings.proxy_listen)
    return ["0.0.0.0", "[::]"] if _has_ipv6() else ["0.0.0.0"]


def _has_ipv6() -> bool:
    try:
        socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close()
    except OSError:
        return False  # nginx could not listen on [::] either (booted with ipv6.disable=1)
    return True


def _checked(pattern: re.Pattern[str], value: str, what: str) -> str:
    if not pattern.fullmatch(value):
        raise ApplianceError(f"{what} {value!r} cannot go into nginx's configuration")
    return value


def _port(value: int, what: str) -> int:
    if not 0 < value < 65536:
        raise ApplianceError(f"[proxy] {what} must be a port number (1-65535), not {value}")
    return value


class Proxy:
    """The appliance's nginx: its configuration file, changed only as nginx accepts, and its reload."""

    def __init__(self, layout: Layout, settings: Settings) -> None:
        self.layout, self.settings = layout, settings

    def mode(self) -> str | None:
        """The mode the current configuration was rendered in; None without one (or one not ours)."""
        try:
            with self.layout.nginx_conf.open() as f:
                first = f.readline().strip()
        except (FileNotFoundError, UnicodeDecodeError):
            return None
        except OSError as e:
            raise ApplianceError(f"cannot read {self.layout.nginx_conf}: {e.strerror}") from None
        mode = first.removeprefix(MARKER) if first.startswith(MARKER) else None
        return mode if mode in MODES else None

    def apply(self, mode: str, server_name: str = "_") -> None:
        """Render ``mode``'s configuration, have nginx test it (undone if refused), then reload nginx."""
        text = render(self.layout, self.settings, mode, server_name)
        path = self.layout.nginx_conf
        try:
            previous = path.read_bytes()
        except FileNotFoundError:
            previous = None
        except OSError as e:
            raise ApplianceError(f"cannot read {path}: {e.strerror}") from None
        write_atomic(path, text)
        try:
            self.test()
        except ApplianceError:
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                write_atomic(path, previous)
            raise
        self.reload()

    def test(self) -> None:
        """Have nginx test its whole configuration (``proxy_test``); an ApplianceError quoting nginx."""
        # nginx's last line is "configuration file … test failed": the line before says what is wrong
        system.run(self.settings.command("proxy_test"), "nginx refused the configuration", explain=_complaint)

    def reload(self) -> None:
        """Reload nginx gracefully (``proxy_reload``): open connections stay on the old workers."""
        system.run(self.settings.command("proxy_reload"), "reloading nginx")


def _complaint(output: str) -> str:
    """nginx's first [emerg] (or [alert], [crit]) line without its date and pid; else its last line."""
    found = re.search(r"\[(?:emerg|alert|crit)\] (?:\d+#\d+: )?(.*)", output)
    return found.group(1) if found else system.last_line(output)
