"""What runs at every boot before nginx: the way back of an unconfirmed network change, the certificate
(made if there is none, replaced by a self-signed one if nginx could not serve it: key and certificate
apart, unreadable, expired), then, until setup is complete, the deploy keys (unattended setup) or the setup
code on the console."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..box import addresses, host, tls_check, tls_install
from ..box.network import Network
from ..box.proxy import Proxy
from ..box.system import wait_for
from ..box.xenstore import open_store
from ..errors import ApplianceError
from ..layout import Layout, Settings
from .completion import Answers, complete
from .deploy import Deploy, read_deploy
from .setup_code import SetupCode, console_text, write_issue

log = logging.getLogger(__name__)


def urls() -> list[str]:
    """The appliance's addresses as URLs to open."""
    return [f"https://[{a}]/" if ":" in a else f"https://{a}/" for a in addresses.local_addresses()]


def _where() -> str:
    """Where to open the appliance, for the console."""
    return " or ".join(urls()) or "https://<address>/"


def _step(lines: list[str], what: str, action: Callable[[], object]) -> bool:
    """Run one part of the boot; a failure is shown on the console and the boot goes on."""
    try:
        action()
        return True
    except (ApplianceError, OSError) as e:
        message = e.message if isinstance(e, ApplianceError) else str(e)
        log.error("first boot: %s failed: %s", what, message)
        lines.append(f"Podium: {what} failed: {message}")
        return False


class SystemBus:
    """The system bus, waited for once: the first boot starts before it (podium-firstboot.service), and
    networkctl and timedatectl need it."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.ready = settings, False

    def wait(self) -> None:
        if self.ready:
            return
        self.ready = True
        wait_for(self.settings.command("bus_wait"), "first boot: waiting for the system bus", timeout=120)


async def firstboot(layout: Layout, settings: Settings) -> list[str]:
    """Prepare the boot; returns the lines for the console. Each part that fails is reported and the
    rest goes on: whatever happens, the console ends up showing the way in (the address and the code)."""
    lines: list[str] = []
    network = Network(layout, settings)
    bus = SystemBus(settings)

    def revert() -> None:
        if layout.network_pending.exists():
            bus.wait()
        if network.revert_if_due():
            lines.append("Podium: an unconfirmed network change was undone; the previous settings are back.")

    _step(lines, "the network's way back", revert)
    hostname = layout.hostname.read_text().strip() if layout.hostname.exists() else "podium"

    def certificate() -> None:
        done = tls_install.ensure_certificate(
            layout, hostname or "podium", address_wait=settings.address_wait_seconds
        )
        if not done:
            return
        info = tls_check.read_info(layout.tls_cert)
        if done.problem:
            kept = " and ".join(path.name for path in done.kept)
            lines.append(f"Podium: the HTTPS certificate could not be used: {done.problem}.")
            lines.append(f"Podium: the old files are kept in {layout.tls_dir} as {kept}.")
        lines.append(f"Podium: a self-signed certificate was made, fingerprint {info.fingerprint}")

    _step(lines, "the certificate", certificate)
    proxy = Proxy(layout, settings)
    if layout.setup_is_complete():
        if proxy.mode() != "ready":
            _step(lines, "nginx's configuration", lambda: proxy.apply("ready"))
        return [*lines, f"Podium: {_where()}"]
    store = open_store(layout, settings)
    deploy = read_deploy(store) if store is not None else Deploy()
    lines += [f"Podium deploy: {problem} (ignored)" for problem in deploy.problems]
    if deploy.network is not None or deploy.ntp or deploy.admin_email:
        bus.wait()
    wanted = deploy.network
    if wanted is not None:
        _step(lines, "the deployed network settings", lambda: network.apply(wanted))
    if deploy.ntp:
        zone = layout.timezone.read_text().strip() if layout.timezone.exists() else "UTC"
        _step(
            lines,
            "the deployed NTP servers",
            lambda: host.set_time(layout, settings, zone or "UTC", deploy.ntp),
        )
    if deploy.admin_email:
        try:
            await complete(layout, settings, Answers(deploy.admin_email, deploy.admin_password))
            return [*lines, f"Podium is set up: sign in at {_where()} as {deploy.admin_email}"]
        except (ApplianceError, OSError) as e:
            message = e.message if isinstance(e, ApplianceError) else str(e)
            lines.append(f"Podium: unattended setup failed ({message}); the setup wizard takes over.")
    code = SetupCode(layout).ensure()
    write_issue(layout, code)
    if proxy.mode() != "setup":
        _step(lines, "nginx's configuration", lambda: proxy.apply("setup"))
    return [*lines, *console_text(code, urls()).splitlines()]
