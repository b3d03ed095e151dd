"""How long an in-place update takes: applying the bundle built from this repository (a full install: verify,
unpack, venv and wheels, back up, migrate, switch, restart, health check) and a rollback, on a real
appliance root with the real server. Targets: apply under 60 s, rollback under 15 s (medians)."""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness.releaseproc import make_appliance
from tests.harness.updateproc import BundleFactory

ROUNDS = 3


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        factory = BundleFactory(folder / "bundles")
        started = time.monotonic()
        old, new = factory("1.0.0"), factory("1.1.0")
        print(f"bundles built in {time.monotonic() - started:.1f} s ({new.stat().st_size / 1e6:.1f} MB each)")
        box = make_appliance(folder / "appliance", factory.keyring_path)
        try:
            done = box.update("apply", "--bundle", str(old))
            assert done.returncode == 0, done.stderr
            box.set_up()
            applies, rollbacks = [], []
            for n in range(1, ROUNDS + 1):
                shutil.rmtree(box.layout.releases / "1.1.0", ignore_errors=True)  # a full install each time
                t0 = time.monotonic()
                done = box.update("apply", "--bundle", str(new))
                applies.append(time.monotonic() - t0)
                assert done.returncode == 0 and box.current() == "1.1.0", done.stderr
                t0 = time.monotonic()
                done = box.update("rollback")
                rollbacks.append(time.monotonic() - t0)
                assert done.returncode == 0 and box.current() == "1.0.0", done.stderr
                print(f"  round {n}: apply {applies[-1]:.1f} s, rollback {rollbacks[-1]:.1f} s")
            print(
                f"apply the bundle (full install, restart, health check): median {statistics.median(applies):.1f} s  [< 60 s]"
            )
            print(
                f"rollback on demand (restart, health check): median {statistics.median(rollbacks):.1f} s  [< 15 s]"
            )
        finally:
            box.stop()


if __name__ == "__main__":
    main()
