"""``podium-server`` (``python -m podium``): run the Podium server."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from aiohttp import web

from .app import make_app
from .config import ConfigError, load


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, read the settings, serve until SIGTERM or SIGINT."""
    p = argparse.ArgumentParser(prog="podium-server", description="The Podium server.")
    p.add_argument("--config", type=Path, help="TOML settings file (environment variables override it)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        settings = load(args.config)
        ssl_context = settings.ssl_context()
    except ConfigError as e:
        print(f"podium-server: {e.message}", file=sys.stderr)
        return 2
    web.run_app(
        make_app(settings), host=settings.host, port=settings.port, ssl_context=ssl_context, print=None
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
