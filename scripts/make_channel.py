"""A signed channel of an update server: ``<out>/<channel>/index.json`` and the bundles beside it (see
appliance/podium_appliance/update/channel.py for the format).

    python scripts/make_channel.py BUNDLES CHANNEL [--out build/channels] [--key build/keys/release.key ...]
                                   [--serial UNIX_TIME] [--expires-days 30] [--keyring FILE ...]
                                   [--key-statements FILE]

Every ``podium-*.bundle`` of BUNDLES released on CHANNEL is verified (signature, payload) and linked, or
copied, into ``<out>/<channel>/``; bundles of other channels are left out, and said so. The index lists
them newest first, with their size, SHA-256 and notes, and carries the key statements of the bundles and
of ``--key-statements``, so an appliance learns a rotated key from the index itself. It is signed with
each ``--key`` (several during a rotation). A serial lower than the one already published is refused:
appliances would refuse the index as a rollback.

Serve ``<out>`` over HTTP(S) and point the appliances' updates.toml ``url`` at it. The index path is
printed on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "appliance"))

from podium_appliance.errors import ApplianceError  # noqa: E402
from podium_appliance.layout import write_atomic  # noqa: E402
from podium_appliance.update.bundle import iter_bundles, read_manifest, verify_bundle  # noqa: E402
from podium_appliance.update.channel import Release, make_signed, sign_index  # noqa: E402
from podium_appliance.update.signing import (  # noqa: E402
    Keyring,
    TrustedKey,
    canonical,
    key_id,
    load_private_key,
    read_keyring_file,
)


def say(message: str) -> None:
    print(f"make_channel: {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    print(f"make_channel: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def publish(bundle: Path, folder: Path) -> Path:
    """``bundle`` in ``folder``: a hard link when possible, else a copy; replaced atomically."""
    target = folder / bundle.name
    if target.exists() and os.path.samefile(bundle, target):
        return target
    tmp = folder / f".{bundle.name}.tmp{os.getpid()}"
    tmp.unlink(missing_ok=True)
    try:
        os.link(bundle, tmp)
    except OSError:
        shutil.copyfile(bundle, tmp)
    os.replace(tmp, target)
    return target


def read_statements(path: Path, keyring: Keyring) -> list[dict[str, Any]]:
    """The JSON list of key statements at ``path``, checked against ``keyring`` (refused here rather than by
    every appliance)."""
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        fail(f"cannot read the key statements {path}: {e}")
    keyring.preview(loaded)
    return [s for s in loaded if isinstance(s, dict)]  # all of them: preview refuses anything but objects


def published_serial(index: Path) -> int | None:
    try:
        serial = json.loads(index.read_bytes())["signed"]["serial"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        say(f"the existing {index} is unreadable ({e}); it is replaced")
        return None
    return serial if isinstance(serial, int) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a signed channel index for a folder of bundles.")
    parser.add_argument("bundles", type=Path, help="a folder of podium-*.bundle files")
    parser.add_argument("channel", help="the channel (stable, latest, ...)")
    parser.add_argument("--out", type=Path, default=ROOT / "build/channels", help="the update server's root")
    parser.add_argument(
        "--key", type=Path, action="append", help="a signing key (repeat to sign with several)"
    )
    parser.add_argument("--serial", type=int, default=int(time.time()), help="default: the Unix time")
    parser.add_argument("--expires-days", type=float, default=30.0, help="how long the index is valid")
    parser.add_argument("--keyring", type=Path, action="append", default=[], help="more keys bundles may use")
    parser.add_argument("--key-statements", type=Path, help="a JSON list of key endorsements and revocations")
    args = parser.parse_args(argv)

    try:
        keys = [load_private_key(p) for p in args.key or [ROOT / "build/keys/release.key"]]
        trusted = [TrustedKey(key_id(k.public_key()), k.public_key(), "", "signing key") for k in keys]
        for path in args.keyring:
            trusted += read_keyring_file(path, "keyring")
        keyring = Keyring(trusted)
        extra = [] if args.key_statements is None else read_statements(args.key_statements, keyring)

        folder = args.out / args.channel
        folder.mkdir(parents=True, exist_ok=True)
        releases: list[Release] = []
        carried: list[tuple[Version, list[dict[str, Any]]]] = []  # each bundle's key statements, by version
        for bundle in iter_bundles(args.bundles):
            claimed = read_manifest(bundle)
            if claimed.channel != args.channel:
                say(f"{bundle.name}: left out, it is for the {claimed.channel} channel")
                continue
            manifest = verify_bundle(
                bundle, keyring, channel=args.channel, python=claimed.python, platform=claimed.platform
            )
            target = publish(bundle, folder)
            size = target.stat().st_size
            releases.append(
                Release(
                    manifest.version,
                    manifest.min_version,
                    target.name,
                    file_sha256(target),
                    size,
                    manifest.notes,
                )
            )
            carried.append((manifest.parsed_version, list(manifest.keys)))
            say(f"{bundle.name}: {manifest.version}, upgrades from {manifest.min_version}, {size} bytes")
        if not releases:
            fail(f"no bundle of the {args.channel} channel in {args.bundles}")
        versions = [r.parsed_version for r in releases]
        if len(set(versions)) != len(versions):
            fail("two bundles hold the same version: keep one")

        index = folder / "index.json"
        previous = published_serial(index)
        if previous is not None and args.serial < previous:
            fail(
                f"serial {args.serial} is lower than the published {previous}: appliances would refuse the "
                "index as a rollback; give a higher --serial"
            )
        # older bundles' statements first: an endorsement comes before the revocation it makes possible
        statements = [s for _, keys_of in sorted(carried, key=lambda c: c[0]) for s in keys_of] + extra
        unique: dict[bytes, dict[str, Any]] = {}
        for statement in statements:
            unique.setdefault(canonical(statement), statement)
        expires = datetime.now(UTC) + timedelta(days=args.expires_days)
        signed = make_signed(args.channel, args.serial, expires, releases, list(unique.values()))
        write_atomic(index, sign_index(signed, keys))
    except ApplianceError as e:
        fail(e.message)
    say(f"{index}: serial {args.serial}, {len(releases)} release(s), expires {signed['expires']}")
    print(index)
    return 0


if __name__ == "__main__":
    sys.exit(main())
