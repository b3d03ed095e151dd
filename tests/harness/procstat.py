"""What Linux says of a process, for the benchmarks: memory from /proc/<pid>/status, writes from io."""

from __future__ import annotations

import os
from pathlib import Path


def status_kb(pid: int, key: str) -> int:
    """A kB figure of /proc/<pid>/status (VmRSS, VmHWM …), 0 when absent."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_mb(pid: int | None = None) -> float:
    """A process's resident memory (this one's by default), in MB."""
    return status_kb(os.getpid() if pid is None else pid, "VmRSS") / 1024
