"""Fixtures of ``make image-test``: the XVA ``make xva`` built, unpacked and booted once for the whole run.

The tests run in file order against one appliance, as an administrator meets it: first boot, the wizard, an
in-place update, a reboot. A machine that cannot run qemu fails here loudly; nothing is skipped.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ..harness.updateproc import serve_updates
from .vmproc import Vm, newest_xva, unpack

#: Under TCG a minimal Debian boots in about 40 s; the appliance's first boot also makes its certificate.
BOOT_SECONDS = 300


@pytest.fixture(scope="session")
def xva() -> Path:
    return newest_xva()


@pytest.fixture(scope="session")
def update_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int]]:
    """An HTTP server on the host's loopback whose folder the update tests fill; the guest reaches it at
    vmproc.UPDATE_ADDRESS."""
    folder = tmp_path_factory.mktemp("update-server")
    with serve_updates(folder) as url:
        port = urlsplit(url).port
        assert port is not None
        yield folder, port


@pytest.fixture(scope="session")
def vm(xva: Path, update_server: tuple[Path, int], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vm]:
    """The appliance, booted from the XVA's disk, SSH answering."""
    if shutil.which("qemu-system-x86_64") is None or shutil.which("debugfs") is None:
        raise RuntimeError(
            "make image-test needs qemu-system-x86 and e2fsprogs (make image-test installs them)"
        )
    folder = tmp_path_factory.mktemp("appliance")
    disk = unpack(xva, folder / "disk")
    machine = Vm(disk, folder, update_server[1])
    machine.prepare()
    machine.start()
    try:
        machine.wait_ssh(BOOT_SECONDS)
        machine.boot_verdict = machine.wait_booted(BOOT_SECONDS)
        machine.wizard_seconds = machine.wait_https("/setup/", BOOT_SECONDS)
        yield machine
    finally:
        machine.stop()
        artifacts = Path(__file__).resolve().parents[2] / "test-artifacts" / "image"
        artifacts.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(machine.serial, artifacts / "serial.log") if machine.serial.exists() else None
