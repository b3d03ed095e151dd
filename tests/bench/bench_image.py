"""The appliance image: its size, how long ``make xva`` took, and how long a fresh copy takes from power-on to
the wizard (the setup code on the serial console and the wizard answering over HTTPS), under the accelerator
``make xva`` found (TCG here). Targets: XVA under 700 MB, ``make xva`` under 20 minutes, boot to the wizard
under 60 s (medians of fresh copies of the disk, each booted once).

Needs the XVA (``make xva``); skips with a message without it, as the other benchmarks need nothing built.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness.serverproc import free_port
from tests.image.vmproc import BUILD, Vm, newest_xva, unpack

ROUNDS = 3


def boot_once(xva_disk: Path, folder: Path) -> tuple[float, float]:
    """Seconds from power-on to the setup code on the console, and to the wizard answering over HTTPS."""
    folder.mkdir()
    disk = folder / "disk.raw"
    # a fresh copy (sparse), so each round is a first boot
    subprocess.run(["cp", "--sparse=always", str(xva_disk), str(disk)], check=True)
    vm = Vm(disk, folder, free_port())
    vm.prepare()
    vm.start()
    try:
        code = vm.wait_serial("Podium setup code:", 600)
        return code, vm.wait_https("/setup/", 600)
    finally:
        vm.stop()


def main() -> None:
    try:
        xva = newest_xva()
    except RuntimeError as e:
        print(f"bench_image: skipped: {e}")
        return
    mib = xva.stat().st_size / 1024**2
    print(f"XVA: {xva.name} {mib:.0f} MiB ({xva.stat().st_size / 1e6:.0f} MB) [target < 700 MB]")
    timings = BUILD / "image" / "timings.json"
    if timings.is_file():
        t = json.loads(timings.read_text())
        base = "base disk reused" if t.get("base_reused") else "base disk built"
        print(
            f"make xva (last run): {t['seconds'] / 60:.1f} min under {t['accelerator']}, {base} [target < 20 min]"
        )
    with tempfile.TemporaryDirectory(dir=BUILD) as tmp:
        folder = Path(tmp)
        disk = unpack(xva, folder / "xva")
        codes, wizards = [], []
        for n in range(1, ROUNDS + 1):
            code, wizard = boot_once(disk, folder / f"boot-{n}")
            codes.append(code)
            wizards.append(wizard)
            print(
                f"  boot {n}: setup code on the console at {code:.1f} s, wizard over HTTPS at {wizard:.1f} s"
            )
        print(
            f"boot to the setup code: median {statistics.median(codes):.1f} s; to the wizard over HTTPS: "
            f"median {statistics.median(wizards):.1f} s [target < 60 s] ({len(wizards)} fresh copies)"
        )


if __name__ == "__main__":
    main()
