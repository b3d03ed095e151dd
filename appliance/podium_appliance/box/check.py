"""``podium-appliance check``: is the appliance healthy? Services, disk space, certificate, pools."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp

from ..errors import ApplianceError
from ..layout import Layout, Settings
from . import tls_check
from .server import health_url

GIB = 1 << 30


@dataclass(frozen=True)
class Result:
    """One check: OK, WARN or FAIL, and what was seen."""

    name: str
    status: str
    detail: str


def services(settings: Settings) -> list[Result]:
    """Each of the appliance's services is running."""
    results = []
    for unit in settings.services:
        argv = settings.command("service_active", unit=unit)
        try:
            ok = subprocess.run(argv, capture_output=True, check=False, timeout=10).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            ok = False
        results.append(Result(f"service {unit}", "OK" if ok else "FAIL", "active" if ok else "not active"))
    return results


def disk(layout: Layout) -> Result:
    """Free space where the appliance keeps its data."""
    where = layout.server_data if layout.server_data.exists() else layout.root
    usage = shutil.disk_usage(where)
    free = f"{usage.free / GIB:.1f} GiB free of {usage.total / GIB:.1f} GiB"
    if usage.free < GIB // 2:
        return Result("disk space", "FAIL", free + " (updates need at least 0.5 GiB)")
    if usage.free < 2 * GIB or usage.free < usage.total / 10:
        return Result("disk space", "WARN", free)
    return Result("disk space", "OK", free)


def certificate(layout: Layout, now: datetime | None = None) -> Result:
    """The HTTPS certificate exists and is not about to expire."""
    try:
        info = tls_check.read_info(layout.tls_cert)
    except (OSError, ApplianceError) as e:
        return Result("certificate", "FAIL", getattr(e, "message", None) or f"{layout.tls_cert}: unreadable")
    days = (info.not_after - (now or datetime.now(UTC))).days
    detail = f"valid until {info.not_after:%Y-%m-%d} ({days} days)"
    if days < 0:
        return Result("certificate", "FAIL", f"expired on {info.not_after:%Y-%m-%d}")
    try:
        problem = tls_check.installed_problem(layout, now)
    except ApplianceError as e:
        problem = e.message
    if problem:  # the next boot replaces it with a self-signed one
        return Result("certificate", "FAIL", f"{problem} (the next boot makes a self-signed one)")
    return Result("certificate", "WARN" if days < 30 else "OK", detail)


async def pools(layout: Layout, settings: Settings) -> Result:
    """The server answers and reaches its pools."""
    if not layout.setup_is_complete():
        return Result("pools", "WARN", "setup is not complete: open the wizard (setup code on the console)")
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(health_url(settings), timeout=aiohttp.ClientTimeout(total=5)) as r,
        ):
            health = await r.json()
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return Result("pools", "FAIL", f"the Podium server does not answer on {settings.server_listen}")
    connected, total = health["pools"]["connected"], health["pools"]["total"]
    if total == 0:
        return Result("pools", "WARN", "no pool added yet")
    return Result("pools", "OK" if connected == total else "WARN", f"{connected} of {total} connected")


async def run_checks(layout: Layout, settings: Settings) -> list[Result]:
    """Every check, in the order they are shown."""
    return [*services(settings), disk(layout), certificate(layout), await pools(layout, settings)]
