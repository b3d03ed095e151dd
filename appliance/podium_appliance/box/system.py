"""Running the commands that act on the system (nginx, systemd, networkd), with errors a person can read."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import Callable

from ..errors import ApplianceError

log = logging.getLogger(__name__)


def last_line(output: str) -> str:
    """What most commands say last when they fail."""
    lines = output.strip().splitlines()
    return lines[-1] if lines else ""


def run(argv: list[str], what: str, timeout: float = 60.0, explain: Callable[[str], str] = last_line) -> str:
    """Run a command; its standard output, or an ApplianceError saying what failed and what it printed
    (the line ``explain`` picks from its error output)."""
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ApplianceError(f"{what}: the command {argv[0]} is not installed") from None
    except subprocess.TimeoutExpired:
        raise ApplianceError(f"{what}: {argv[0]} did not finish within {timeout:.0f} s") from None
    if done.returncode != 0:
        detail = explain(done.stderr or done.stdout) or f"exit status {done.returncode}"
        raise ApplianceError(f"{what}: {detail}")
    log.debug("%s: %s done", what, argv[0])
    return done.stdout


def wait_for(argv: list[str], what: str, timeout: float) -> None:
    """Run a command that waits for a systemd job (a socket listening, a oneshot done); a failure is logged,
    not raised: whatever needed the job says what went wrong, if anything does."""
    try:
        run(argv, what, timeout)
    except ApplianceError as e:
        log.warning("%s", e.message)


async def run_async(argv: list[str], what: str, timeout: float = 60.0) -> str:
    """:func:`run` without blocking the event loop."""
    return await asyncio.to_thread(run, argv, what, timeout)
