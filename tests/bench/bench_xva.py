"""Benchmarks of podium.xva on a 1 GiB half-sparse disk (targets in brackets); prints medians.

1. Writing the XVA to a file (xxhash, sha1; gzip and zstd once)          [write >= 500 MB/s of disk, plain]
2. Parsing it, fed in 1 MiB blocks from the page cache, events dropped    [>= 500 MB/s of stream]
3. extract() to a sparse raw file
4. XvaWriter.aiter() from asyncio against iterating the writer directly
Each measurement runs in a child process of its own, so that its peak RSS growth is its own.
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.harness.procstat import rss_mb

MiB = 1024 * 1024
SIZE = 1024 * MiB
RUNS = 3


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def ova() -> dict:
    from tests.unit.podium.xvahelp import ova_for

    return ova_for({"Ref:1": SIZE})


def child(op: str, work: str, *args: str) -> None:
    """One measurement; prints {"seconds", "bytes", "rss_growth"} as JSON."""
    from podium.xva import XvaParser, XvaWriter, extract

    folder = Path(work)
    base = rss_mb()
    began = time.perf_counter()
    if op == "write":
        checksum, compression = args[0], (None if args[1] == "none" else args[1])
        out = XvaWriter(ova(), {"Ref:1": folder / "disk.raw"}, checksum, compression).write(
            folder / "out.xva"
        )
        size = SIZE
        out.unlink()
    elif op == "parse":
        parser = XvaParser()
        size = 0
        with open(folder / args[0], "rb") as f:
            while block := f.read(MiB):
                size += len(block)
                parser.feed(block)
        parser.close()
    elif op == "extract":
        dest = folder / "x"
        extract(folder / args[0], dest)
        size = (folder / args[0]).stat().st_size
        for p in dest.iterdir():
            p.unlink()
        dest.rmdir()
    else:  # "aiter" or "iter": the stream produced without writing it anywhere
        writer = XvaWriter(ova(), {"Ref:1": folder / "disk.raw"}, args[0])

        async def drain() -> tuple[int, float]:
            total, worst, last = 0, 0.0, time.perf_counter()
            if op == "aiter":
                async for block in writer.aiter():
                    total += len(block)
                    now = time.perf_counter()
                    worst, last = max(worst, now - last), now
            else:
                for block in writer:
                    total += len(block)
            return total, worst

        size, stall = asyncio.run(drain())
        if op == "aiter":
            print(json.dumps({"stall": stall}), file=sys.stderr)
    seconds = time.perf_counter() - began
    print(json.dumps({"seconds": seconds, "bytes": size, "rss_growth": peak_mb() - base}))


def run(work: Path, *args: str) -> dict:
    argv = [sys.executable, __file__, "--child", *args[:1], str(work), *args[1:]]
    out = subprocess.run(argv, check=True, capture_output=True, text=True)
    result: dict = json.loads(out.stdout)
    if out.stderr.strip():
        result.update(json.loads(out.stderr.strip().splitlines()[-1]))
    return result


def report(label: str, results: list[dict], unit_bytes: str) -> None:
    rates = [r["bytes"] / r["seconds"] / 1e6 for r in results]
    growth = max(r["rss_growth"] for r in results)
    stalls = [r["stall"] for r in results if "stall" in r]
    extra = f", longest wait between blocks {max(stalls) * 1000:.1f} ms" if stalls else ""
    runs = ", ".join(f"{r:.0f}" for r in rates)
    print(
        f"{label:<34} median {statistics.median(rates):7.0f} MB/s of {unit_bytes}"
        f" (runs: {runs}), peak RSS growth {growth:.1f} MB{extra}"
    )


def main() -> None:
    from podium.xva import XvaWriter

    with tempfile.TemporaryDirectory(prefix="bench-xva-", dir=os.environ.get("TMPDIR", "/var/tmp")) as tmp:
        work = Path(tmp)
        with open(work / "disk.raw", "wb") as f:  # half-sparse: every other MiB holds random data
            f.truncate(SIZE)
            for i in range(0, SIZE // MiB, 2):
                f.seek(i * MiB)
                f.write(os.urandom(MiB))
        print(f"disk: {SIZE // MiB} MiB, {SIZE // MiB // 2} MiB of data in every other MiB")
        for checksum in ("xxhash", "sha1"):
            report(f"write, {checksum}", [run(work, "write", checksum, "none") for _ in range(RUNS)], "disk")
        for compression in ("gzip", "zstd"):
            report(f"write, xxhash, {compression}", [run(work, "write", "xxhash", compression)], "disk")
        for checksum in ("xxhash", "sha1"):
            XvaWriter(ova(), {"Ref:1": work / "disk.raw"}, checksum).write(work / f"{checksum}.xva")
            report(
                f"parse, {checksum}", [run(work, "parse", f"{checksum}.xva") for _ in range(RUNS)], "stream"
            )
        report("extract, xxhash", [run(work, "extract", "xxhash.xva") for _ in range(RUNS)], "stream")
        XvaWriter(ova(), {"Ref:1": work / "disk.raw"}, "xxhash", "zstd").write(work / "zstd.xva")
        report(
            "parse, xxhash, zstd", [run(work, "parse", "zstd.xva") for _ in range(RUNS)], "compressed stream"
        )
        for op in ("iter", "aiter"):
            report(f"stream by {op}(), sha1", [run(work, op, "sha1") for _ in range(RUNS)], "stream")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:])
    else:
        main()
