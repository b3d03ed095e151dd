"""What systemctl does for the appliance's services, for tests: ``start NAME -- ARGV…`` runs ARGV detached
(its pid in ``<dir>/<NAME>.pid``, its output appended to ``<dir>/<NAME>.log``), ``stop NAME`` ends it (TERM,
then KILL after 20 s; a stopped service stops fine), ``active NAME`` answers by the exit status.

Zombies count as stopped: in a container the reaper may be slow, and ``kill -0`` succeeds on a zombie.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def pid_of(folder: Path, name: str) -> int | None:
    try:
        pid = int((folder / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def main(argv: list[str]) -> int:
    folder, action, name, *rest = argv
    where = Path(folder)
    if action == "active":
        return 0 if pid_of(where, name) else 3
    if action == "stop":
        pid = pid_of(where, name)
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        (where / f"{name}.pid").unlink(missing_ok=True)
        return 0
    if action == "start":
        if pid_of(where, name):
            return 0  # systemctl start of a running service
        cmd = rest[1:] if rest[:1] == ["--"] else rest
        with (where / f"{name}.log").open("ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True
            )
        (where / f"{name}.pid").write_text(f"{proc.pid}\n")
        return 0
    print(f"unknown action {action}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
