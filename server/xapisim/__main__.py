"""``python -m xapisim``: serve real pool databases over XAPI's wire protocol until SIGTERM.

Prints one line per host, ``host <pool> <host> <url> master|member`` (names quoted as a shell would
when they hold spaces), then ``control <url>``, ``credentials <user> <password>`` when the password was
generated, ``tls-fingerprint <sha256>`` with --tls, and ``ready``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import secrets
import shlex
import signal
import sys
from importlib import resources
from pathlib import Path

from .control import Control
from .dbdump import DumpError
from .http import Listeners
from .records import warm
from .scale import scale_pool
from .simulator import Simulator

log = logging.getLogger("xapisim")


def default_db() -> Path:
    """The bundled pool: a real two-host pool's database (see data/README.md)."""
    return Path(str(resources.files("xapisim").joinpath("data/tampa-poolof16and23-xapi-db.xml")))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m xapisim", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--db",
        action="append",
        type=Path,
        help="XAPI database dump; one per pool (default: the bundled pool)",
    )
    p.add_argument("--port", type=int, default=0, help="the port every host listens on (0: pick a free one)")
    p.add_argument("--user", default="root", help="user name accepted by login (default: root)")
    p.add_argument("--password", help="password accepted by login (default: a random one, printed)")
    p.add_argument("--tls", action="store_true", help="serve HTTPS with a self-signed certificate")
    p.add_argument(
        "--no-jsonrpc", action="store_true", help="speak XML-RPC only, as hosts before XenServer 7.3"
    )
    p.add_argument("--scale", type=int, metavar="N", help="grow every pool to N VMs by cloning its real VMs")
    p.add_argument("--address-base", type=int, default=42, help="hosts listen on 127.<base>.<pool>.<host>")
    p.add_argument("--control-port", type=int, default=0, help="port of the control surface on 127.0.0.1")
    p.add_argument("--op-seconds", type=float, default=0.05, help="simulated duration of a VM operation")
    p.add_argument(
        "--boot-seconds",
        type=float,
        default=2.0,
        help="how long a rebooting host stays unreachable (an agent restart: a quarter of it)",
    )
    p.add_argument(
        "--auth-failure-delay", type=float, default=5.0, help="delay before a failed login answers (xapi: 5)"
    )
    p.add_argument(
        "--history", type=int, default=100_000, help="changes kept for event.from before EVENTS_LOST"
    )
    p.add_argument(
        "--disk-dir",
        type=Path,
        help="where disk contents are kept as sparse files (default: a temporary folder)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every failed call")
    args = p.parse_args(argv)
    if not 0 <= args.port <= 65535:
        p.error("--port must be from 0 to 65535")
    if not 1 <= args.address_base <= 254:
        p.error("--address-base must be from 1 to 254")
    if args.scale is not None and not 0 <= args.scale <= 100_000:
        p.error("--scale must be from 0 to 100000")
    return args


async def serve(args: argparse.Namespace) -> int:
    """Load the pools, listen, print the addresses and run until SIGTERM or SIGINT."""
    password = args.password if args.password is not None else secrets.token_urlsafe(12)
    sim = Simulator(
        user=args.user,
        password=password,
        address_base=args.address_base,
        op_seconds=args.op_seconds,
        boot_seconds=args.boot_seconds,
        auth_failure_delay=args.auth_failure_delay,
        history=args.history,
        disk_dir=args.disk_dir,
    )
    for path in args.db or [default_db()]:
        try:
            pool = sim.add_pool(path)
        except (OSError, DumpError, ValueError) as e:
            print(f"xapisim: cannot load {path}: {e}", file=sys.stderr)
            return 2
        if args.scale is not None:
            scale_pool(pool, args.scale)
            pool.db.changes.forget(pool.db.generation)
    # Millions of long-lived records: keep them out of the cyclic collector's full scans (pauses of seconds).
    gc.collect()
    gc.freeze()
    tls = fingerprint = None
    if args.tls:
        from .tls import self_signed_context

        tls, fingerprint = self_signed_context([h.address for p in sim.pools for h in p.hosts.values()])
    listeners = Listeners(sim, args.port, tls, jsonrpc=not args.no_jsonrpc)
    try:
        await listeners.start()
    except OSError as e:
        print(f"xapisim: {e}", file=sys.stderr)
        return 3
    # Encode every record once in the background, so a client's first full read is not the slow one.
    warming = [asyncio.create_task(warm(pool.db), name=f"warm {pool.name}") for pool in sim.pools]
    control = Control(sim, listeners)
    control_url = await control.start(port=args.control_port)
    for pool in sim.pools:
        for host in pool.hosts.values():
            role = "master" if host.is_master else "member"
            print(f"host {shlex.quote(pool.name)} {shlex.quote(host.name)} {listeners.url(host)} {role}")
    print(f"control {control_url}")
    if args.password is None:
        print(f"credentials {args.user} {password}")
    if fingerprint:
        print(f"tls-fingerprint {fingerprint}")
    print("ready", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    for task in warming:
        task.cancel()
    await control.close()
    await listeners.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the simulator."""
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return asyncio.run(serve(args))


if __name__ == "__main__":
    sys.exit(main())
