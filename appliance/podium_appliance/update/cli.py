"""``podium-appliance update status|check|apply|rollback|serve|recover``.

The commands ask the updater service over its unix socket, and follow its progress in the terminal. When
the service is not running (at the image build, or a service stopped by hand) the command does the work
itself, under the same lock, with the same progress.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ApplianceError
from ..layout import Layout, Settings

if TYPE_CHECKING:  # the parser is built without importing the updater (or its cryptography), aiohttp or tqdm
    import aiohttp
    from tqdm import tqdm

    from .releases import Outcome


def add_parser(sub: Any) -> None:
    """The ``update`` command's arguments."""
    update = sub.add_parser("update", help="signed in-place updates: status, check, apply, rollback")
    actions = update.add_subparsers(dest="action", required=True, metavar="ACTION")
    actions.add_parser("status", help="what is installed and running, what happened last")
    actions.add_parser("check", help="look for a new release on the channel")
    apply = actions.add_parser("apply", help="install the newest release, a given version, or a bundle file")
    apply.add_argument("--bundle", type=Path, help="a bundle file (an offline update)")
    apply.add_argument("--version", help="this release of the channel rather than the newest")
    apply.add_argument("--channel", help="accept a bundle of this channel (default: the configured one)")
    apply.add_argument("--force", action="store_true", help="allow a downgrade or a reinstall")
    apply.add_argument("--no-snapshot", action="store_true", help="no snapshot of the appliance's VM first")
    back = actions.add_parser("rollback", help="go back to the release this one was upgraded from")
    back.add_argument("--force", action="store_true", help="accept losing data changed since the upgrade")
    actions.add_parser("serve", help="run the updater service (systemd runs it)")
    actions.add_parser("recover", help="finish an interrupted update (the service does it at start)")


def run(layout: Layout, settings: Settings, args: argparse.Namespace) -> int:
    """Run one ``update`` action; 0 when it succeeded, 1 otherwise."""
    return asyncio.run(_run(layout, args))


async def _run(layout: Layout, args: argparse.Namespace) -> int:
    from .channel_client import ChannelClient
    from .config import UpdateConfig
    from .releases import status
    from .updater import Updater

    if args.action == "serve":
        from .service import serve

        await serve(layout)
        return 0
    client = ServiceClient(layout)
    if args.action == "status":
        info = await client.get("/status") if await client.available() else status(layout)
        _print_status(info)
        return 0
    if args.action == "check":
        if await client.available():
            answer = await client.post("/check", {})
        else:
            answer = await ChannelClient(layout, UpdateConfig.load(layout)).check()
        print(answer["message"])
        if answer.get("available") and answer["available"].get("notes"):
            print("\n" + answer["available"]["notes"].strip())
        return 0
    if args.action == "recover":
        outcome = await Updater(layout, report=Progress()).recover()
        print(outcome.message if outcome else "nothing to recover")
        return 0 if outcome is None or outcome.ok else 1
    if args.action == "apply":
        body: dict[str, Any] = {"force": args.force}
        if args.no_snapshot:
            body["snapshot"] = False
        if args.channel:
            body["channel"] = args.channel
        if args.bundle:
            if not args.bundle.is_file():
                raise ApplianceError(f"{args.bundle}: no such file")
            body["bundle"] = str(args.bundle.resolve())
        elif args.version:
            body["version"] = args.version
        return await _operate(layout, client, "/apply", body)
    return await _operate(layout, client, "/rollback", {"force": args.force})


async def _operate(layout: Layout, client: ServiceClient, path: str, body: dict[str, Any]) -> int:
    progress = Progress()
    if await client.available():
        started = await client.post(path, body)
        outcome = await client.follow(int(started["seq"]), progress)
    else:
        print("(the updater service is not running: this command does the work itself)", file=sys.stderr)
        outcome = asdict(await _local(layout, path, body, progress))
    progress.close()
    print(outcome["message"])
    return 0 if outcome.get("ok") else 1


async def _local(layout: Layout, path: str, body: dict[str, Any], progress: Progress) -> Outcome:
    from .channel_client import ChannelClient
    from .updater import Updater

    updater = Updater(layout, report=progress)
    if path == "/rollback":
        return await updater.rollback(force=bool(body.get("force")))
    if body.get("bundle"):
        bundle = Path(body["bundle"])
    else:
        bundle = await ChannelClient(layout, updater.config, report=progress).download(body.get("version"))
    return await updater.apply(
        bundle, channel=body.get("channel"), force=bool(body.get("force")), snapshot=body.get("snapshot")
    )


class Progress:
    """The progress of an operation in the terminal: a bar on a terminal, one line per step otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.bar: tqdm[Any] | None = None
        self.last = ""

    def __call__(self, event: dict[str, Any]) -> None:
        if "done" in event:
            return
        percent = float(event.get("percent", 0.0))
        message = str(event.get("message", ""))
        if self.tty:
            if self.bar is None:
                from tqdm import tqdm  # here: the command line starts without it (boot services share it)

                self.bar = tqdm(total=100, unit="%", file=sys.stderr, bar_format="{l_bar}{bar}| {desc}")
            self.bar.n = percent
            self.bar.set_description_str(message[:60])
            self.bar.refresh()
        elif message != self.last:
            print(f"[{percent:5.1f}%] {message}", file=sys.stderr, flush=True)
        self.last = message

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class ServiceClient:
    """HTTP over the updater's unix socket."""

    def __init__(self, layout: Layout) -> None:
        self.path = str(layout.update_socket)

    def _session(self) -> aiohttp.ClientSession:
        import aiohttp  # here: the command line starts without it (boot services share it)

        return aiohttp.ClientSession(
            connector=aiohttp.UnixConnector(path=self.path),
            timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
        )

    async def available(self) -> bool:
        if not await asyncio.to_thread(os.path.exists, self.path):
            return False
        import aiohttp

        try:
            await self.get("/status")
            return True
        except (aiohttp.ClientConnectionError, OSError):
            return False

    async def _answer(self, resp: aiohttp.ClientResponse) -> Any:
        data = await resp.json(content_type=None)
        if resp.status >= 400:
            raise ApplianceError(str(data.get("error", f"the updater answered {resp.status}")))
        return data

    async def get(self, path: str) -> Any:
        async with self._session() as http, http.get(f"http://updater{path}") as resp:
            return await self._answer(resp)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        async with self._session() as http, http.post(f"http://updater{path}", json=body) as resp:
            return await self._answer(resp)

    async def follow(self, since: int, progress: Progress) -> dict[str, Any]:
        """Progress events until the operation's outcome."""
        async with self._session() as http, http.get(f"http://updater/events?since={since}") as resp:
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                if "done" in event:
                    done: dict[str, Any] = event["done"]
                    return done
                progress(event)
        raise ApplianceError("the updater service stopped before the operation ended; see its log")


def _when(at: float | None) -> str:
    if not at:
        return "never"
    return datetime.datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M")


def _print_status(info: dict[str, Any]) -> None:
    print(f"running:   {info.get('current') or 'nothing installed'}")
    print(f"installed: {', '.join(info.get('installed') or []) or '-'}")
    if info.get("bad"):
        print(f"failed:    {', '.join(info['bad'])} (skipped by the checks; install by name to retry)")
    if info.get("busy"):
        progress = info.get("progress") or {}
        print(f"busy:      {info['busy']} {progress.get('percent', '')}% {progress.get('message', '')}")
    if info.get("interrupted"):
        j = info["interrupted"]
        print(f"interrupted: {j['operation']} to {j['target']} in {j['phase']} (finished at the next start)")
    last = info.get("last")
    if last:
        print(f"last:      {_when(last.get('at'))} {last['operation']}: {last['message']}")
    check = info.get("last_check")
    if check:
        print(f"checked:   {_when(check.get('at'))}: {check.get('message', '')}")
