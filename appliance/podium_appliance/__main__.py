"""``podium-appliance``: the appliance's own command, for its console and its services.

    podium-appliance [--root DIR] firstboot | wizard | setup-code [--new]
                     network show | network dhcp | network static ADDRESS [--netmask M] [--gateway G] [--dns D…]
                     check | reset-admin-password [EMAIL] [--password-stdin]
                     proxy apply setup|ready | tls show | tls install CERT KEY
                     update status | check | apply [--bundle FILE | --version V] [--force] | rollback | serve
                     guest-metrics [--once] [--interval SECONDS]

Exit status: 0 done, 1 failed (the message says why), 2 wrong usage.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from .errors import ApplianceError
from .layout import Layout, Settings
from .update import cli as update_cli

# Each command imports what it needs when it runs: the boot's services (firstboot, the wizard) start this
# command under software emulation too, where every module imported for nothing costs a visible delay.


def parser() -> argparse.ArgumentParser:
    """The command line."""
    p = argparse.ArgumentParser(prog="podium-appliance", description="The Podium appliance's own command.")
    p.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("PODIUM_APPLIANCE_ROOT", "/")),
        help="the filesystem root the appliance lives under (default /)",
    )
    p.add_argument("-v", "--verbose", action="store_true")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("firstboot", help="at boot: the certificate, the deploy keys, the setup code")
    sub.add_parser("wizard", help="serve the setup wizard (on loopback, behind nginx)")
    code = sub.add_parser("setup-code", help="show the setup code")
    code.add_argument("--new", action="store_true", help="replace it (if it may have been seen)")
    net = sub.add_parser("network", help="show or change the network settings")
    net_sub = net.add_subparsers(dest="mode", required=True)
    net_sub.add_parser("show")
    net_sub.add_parser("dhcp")
    static = net_sub.add_parser("static")
    static.add_argument("address", help="ADDRESS/PREFIX, or ADDRESS with --netmask")
    static.add_argument("--netmask", default="")
    static.add_argument("--gateway", default="")
    static.add_argument("--dns", nargs="*", default=[])
    sub.add_parser("check", help="services, disk space, certificate expiry, pool connectivity")
    reset = sub.add_parser("reset-admin-password", help="give the admin a new password")
    reset.add_argument("email", nargs="?", help="the user (default: the admin created at setup)")
    reset.add_argument("--password-stdin", action="store_true")
    proxy = sub.add_parser("proxy", help="render the nginx configuration and reload nginx")
    proxy.add_argument("action", choices=["apply"])
    proxy.add_argument("mode", choices=["setup", "ready"])
    cert = sub.add_parser("tls", help="the HTTPS certificate")
    cert.add_argument("action", choices=["show", "install"])
    cert.add_argument("files", nargs="*", type=Path, metavar="CERT KEY")
    update_cli.add_parser(sub)
    metrics = sub.add_parser("guest-metrics", help="report the addresses and OS to the pool through XenStore")
    metrics.add_argument("--once", action="store_true", help="report once, then exit")
    metrics.add_argument(
        "--interval",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="rewrite every key this often (default 60); addresses are checked every 5 s",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    """Run one command; an ApplianceError is printed as one line, never a traceback."""
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        stream=sys.stderr,
        format="%(levelname)s %(name)s: %(message)s",
    )
    layout = Layout(args.root)
    try:
        settings = layout.settings()
        return COMMANDS[args.command](layout, settings, args)
    except ApplianceError as e:
        print(f"podium-appliance: {e.message}", file=sys.stderr)
        return 1


def _firstboot(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from .setup.firstboot import firstboot

    for line in asyncio.run(firstboot(layout, settings)):
        print(line, flush=True)  # on the console (the unit's output goes to tty and serial)
    return 0


def _wizard(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    import asyncio
    import signal

    from aiohttp import web

    from .box.system import wait_for
    from .setup.wizard import make_app

    # The wizard's service starts beside the first boot's, to import the above meanwhile (seconds under
    # emulation); it serves only once the first boot is done: the setup code, the certificate and any
    # network change undone are that one's, and the deploy keys may have completed the setup.
    wait_for(settings.command("firstboot_wait"), "waiting for the first boot's service", timeout=600)
    if layout.setup_is_complete():
        logging.getLogger(__name__).info("setup is complete: the wizard is not needed")
        return 0
    host, _, port = settings.wizard_listen.rpartition(":")
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)  # the confirm link's token is in a query
    app = make_app(layout, settings)

    async def stop_when_finished(app: web.Application) -> None:
        async def wait() -> None:
            await app["wizard"].finished.wait()
            await asyncio.sleep(2)  # the last page reaches the browser first
            # run_app turns SIGTERM into a graceful exit; raising GracefulExit in this task instead would
            # end in a logged traceback
            signal.raise_signal(signal.SIGTERM)

        app["stopper"] = asyncio.get_running_loop().create_task(wait())

    app.on_startup.append(stop_when_finished)
    try:
        web.run_app(app, host=host.strip("[]"), port=int(port), print=None)
    except web.GracefulExit:
        pass
    return 0


def _setup_code(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    from .setup.firstboot import urls
    from .setup.setup_code import SetupCode, console_text, write_issue

    if layout.setup_is_complete():
        raise ApplianceError("setup is complete: there is no setup code any more")
    code = SetupCode(layout)
    value = code.renew() if args.new else code.ensure()
    write_issue(layout, value)
    print(console_text(value, urls()), end="")
    return 0


def _network(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    from .box.network import DHCP, Network, static_config

    net = Network(layout, settings)
    if args.mode == "show":
        print(net.current().describe())
        return 0
    if args.mode == "dhcp":
        wanted = DHCP
    else:
        wanted = static_config(args.address, args.netmask, args.gateway, " ".join(args.dns))
    net.apply(wanted)
    print(f"network: {wanted.describe()}")
    return 0


def _check(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    import asyncio

    from .box.check import run_checks

    results = asyncio.run(run_checks(layout, settings))
    width = max(len(r.name) for r in results)
    for r in results:
        print(f"{r.status:<5} {r.name:<{width}}  {r.detail}")
    return 1 if any(r.status == "FAIL" for r in results) else 0


def _reset_admin_password(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    from .box.server import reset_password
    from .setup.completion import set_up_admin

    email = args.email or set_up_admin(layout)
    if not email:
        raise ApplianceError("setup is not complete: give the user's e-mail")
    given = sys.stdin.readline().rstrip("\n") if args.password_stdin else ""
    if args.password_stdin and not given:
        raise ApplianceError("no password on standard input")
    password = reset_password(layout, settings, email, given)
    if given:
        print(f"The password of {email} was changed.")
    else:
        print(f"New password for {email}: {password}")
    return 0


def _proxy(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    from .box.proxy import Proxy

    Proxy(layout, settings).apply(args.mode)
    print(f"nginx: {args.mode} configuration applied")
    return 0


def _tls(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    from .box import tls_check, tls_install

    if args.action == "show":
        info = tls_check.read_info(layout.tls_cert)
    else:
        if len(args.files) != 2:
            raise ApplianceError("tls install CERT KEY: give the certificate file and the key file")
        try:
            cert, key = (path.read_bytes() for path in args.files)
        except OSError as e:
            raise ApplianceError(f"cannot read {e.filename}: {e.strerror}") from None
        info = tls_install.install(layout, settings, cert, key)
    print(f"subject:     {info.subject}\nnames:       {', '.join(info.names)}")
    print(f"valid until: {info.not_after:%Y-%m-%d %H:%M} UTC\nfingerprint: {info.fingerprint}")
    for warning in info.warnings:
        print(f"warning:     {warning}")
    return 0


def _guest_metrics(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    from .box import guest_metrics

    guest_metrics.serve(layout, settings, args.interval, once=args.once)
    return 0


COMMANDS = {
    "firstboot": _firstboot,
    "wizard": _wizard,
    "setup-code": _setup_code,
    "network": _network,
    "check": _check,
    "reset-admin-password": _reset_admin_password,
    "proxy": _proxy,
    "tls": _tls,
    "update": update_cli.run,
    "guest-metrics": _guest_metrics,
}

if __name__ == "__main__":
    sys.exit(main())
