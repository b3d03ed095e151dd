"""What runs at every boot before nginx: the way back of an unconfirmed network change, the certificate,
then, until setup is complete, the deploy keys (unattended setup) or the setup code on the console."""

from __future__ import annotations

import logging

from . import host, tls
from .completion import Answers, complete, is_complete
from .errors import ApplianceError
from .layout import Layout, Settings
from .network import Network
from .proxy import Proxy
from .setup_code import SetupCode, console_text, write_issue
from .xenstore import Deploy, open_store, read_deploy

log = logging.getLogger(__name__)


def urls() -> list[str]:
    """The appliance's addresses as URLs to open."""
    return [f"https://[{a}]/" if ":" in a else f"https://{a}/" for a in tls.local_addresses()]


async def firstboot(layout: Layout, settings: Settings) -> list[str]:
    """Prepare the boot; returns the lines for the console."""
    lines: list[str] = []
    if Network(layout, settings).revert_if_due():
        lines.append("Podium: an unconfirmed network change was undone; the previous settings are back.")
    hostname = layout.hostname.read_text().strip() if layout.hostname.exists() else "podium"
    if tls.ensure_certificate(layout, hostname or "podium"):
        info = tls.read_info(layout.tls_cert)
        lines.append(f"Podium: a self-signed certificate was made, fingerprint {info.fingerprint}")
    proxy = Proxy(layout, settings)
    if is_complete(layout):
        if proxy.mode() != "ready":
            proxy.apply("ready")
        return [*lines, f"Podium: {' or '.join(urls()) or 'https://<address>/'}"]
    store = open_store(layout, settings)
    deploy = read_deploy(store) if store is not None else Deploy()
    lines += [f"Podium deploy: {problem} (ignored)" for problem in deploy.problems]
    if deploy.network is not None:
        Network(layout, settings).apply(deploy.network)
    if deploy.ntp:
        zone = layout.timezone.read_text().strip() if layout.timezone.exists() else "UTC"
        host.set_time(layout, settings, zone or "UTC", deploy.ntp)
    if deploy.admin_email:
        try:
            await complete(layout, settings, Answers(deploy.admin_email, deploy.admin_password))
            return [*lines, f"Podium is set up: sign in at {' or '.join(urls()) or 'https://<address>/'} "
                            f"as {deploy.admin_email}"]  # fmt: skip
        except ApplianceError as e:
            lines.append(f"Podium: unattended setup failed ({e.message}); the setup wizard takes over.")
    code = SetupCode(layout).ensure()
    write_issue(layout, code)
    if proxy.mode() != "setup":
        proxy.apply("setup")
    return [*lines, *console_text(code, urls()).splitlines()]
