"""Hand-made bundles and tars for the updater's tests, good and bad."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from podium_appliance.update.bundle import this_platform, this_python
from podium_appliance.update.signing import canonical, sign


def payload_dir(folder: Path, wheels: tuple[str, ...] = ("podium-0.2.0-py3-none-any.whl",)) -> Path:
    """A small payload: a few fake wheels and a rootfs file."""
    (folder / "wheels").mkdir(parents=True)
    for name in wheels:
        (folder / "wheels" / name).write_bytes(b"PK fake wheel " + name.encode() * 50)
    (folder / "rootfs/etc/podium").mkdir(parents=True)
    (folder / "rootfs/etc/podium/appliance.toml").write_text("# settings\n")
    (folder / "rootfs/usr/bin").mkdir(parents=True)
    tool = folder / "rootfs/usr/bin/podium-tool"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o4775)
    return folder


def fields(version: str = "0.2.0", **more: Any) -> dict[str, Any]:
    return {"version": version, "channel": "stable", "min_version": "0.1.0", "notes": "# Notes\n", **more}


def tar_bytes(members: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    """A ustar archive of ``members``: (name, data) pairs for regular files, or TarInfo for anything else."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member, io.BytesIO(b"\0" * member.size) if member.size else None)
            else:
                name, data = member
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def manifest_for(payload: bytes, /, **more: Any) -> dict[str, Any]:
    return {
        "format": 1,
        "name": "podium",
        "version": "0.2.0",
        "channel": "stable",
        "min_version": "0.1.0",
        "created": "2026-01-01T00:00:00Z",
        "python": this_python(),
        "platform": this_platform(),
        "payload": {"sha256": hashlib.sha256(payload).hexdigest(), "size": len(payload)},
        "wheels": [],
        "notes": "",
        "keys": [],
        **more,
    }


def raw_bundle(path: Path, manifest: dict[str, Any], payload: bytes, key: Ed25519PrivateKey) -> Path:
    """A bundle put together by hand: ``manifest`` as given, signed by ``key``, with ``payload``."""
    manifest_bytes = json.dumps(manifest).encode()
    signature = canonical(sign(manifest_bytes, key))
    path.write_bytes(
        tar_bytes([("manifest.json", manifest_bytes), ("manifest.sig", signature), ("payload.tar", payload)])
    )
    return path
