"""Channel indexes: ``<channel>/index.json`` on an update server, the signed list of a channel's releases.

One file plays the parts of TUF's timestamp, snapshot and targets metadata::

    {"signed": {"format": 1, "channel", "serial", "expires", "releases": [...], "keys": [...]},
     "signatures": [{"key_id", "signature"}, ...]}

each signature over ``canonical(signed)``. Besides the signature, three checks keep an attacker who
controls the server, the network or a mirror from holding an appliance back, since they cannot forge a
new index: ``channel`` (an index of another channel served in its place), ``serial`` (an older index
replayed: rollback) and ``expires`` (the same index served forever, hiding new releases: freeze). Each
release names its bundle by a URL relative to the index and pins its size and SHA-256, so a download can
be checked as it arrives; the bundle's own signature is verified before it is installed, like any other.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urljoin, urlsplit

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from packaging.version import InvalidVersion, Version

from .signing import Keyring, UpdateRefused, canonical, sign

FORMAT = 1
#: An index lists a few dozen releases with their notes; far more than that is not an index.
MAX_INDEX_BYTES = 4 << 20
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class Release:
    """A release as the index lists it."""

    version: str
    min_version: str
    file: str
    sha256: str
    size: int
    notes: str = ""

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    def url(self, index_url: str) -> str:
        """The bundle's URL, its ``file`` taken relative to the index's URL."""
        return urljoin(index_url, self.file)

    def check_file(self, path: Path) -> None:
        """Refuse a downloaded bundle whose size or SHA-256 is not what the signed index says."""
        digest, size = hashlib.sha256(), 0
        with path.open("rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
                size += len(chunk)
        if size != self.size or digest.hexdigest() != self.sha256:
            raise UpdateRefused(
                f"the download of {self.version} is not the bundle the signed channel index describes "
                f"({size} bytes, SHA-256 {digest.hexdigest()[:16]}…, where the index says {self.size} bytes, "
                f"{self.sha256[:16]}…): it was damaged or replaced on the way; try again"
            )

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "min_version": self.min_version,
            "file": self.file,
            "sha256": self.sha256,
            "size": self.size,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Index:
    """A verified channel index. ``signed_by``: the key whose signature was accepted."""

    channel: str
    serial: int
    expires: datetime
    releases: tuple[Release, ...]
    keys: tuple[dict[str, Any], ...] = ()
    signed_by: str = field(default="", compare=False)

    def release(self, version: str) -> Release | None:
        """The release of ``version`` (compared as versions: ``1.0`` is ``1.0.0``), if listed."""
        wanted = _version_or_none(version)
        return next((r for r in self.releases if r.parsed_version == wanted), None)

    def newest(self, installed_version: str | Version | None, skip: Iterable[str] = ()) -> Release | None:
        """The newest release newer than ``installed_version`` that upgrades from it (its ``min_version``
        allows it), leaving out the versions in ``skip`` (marked bad on this appliance); None if there is
        none. When the newest release needs a newer starting point, an intermediate one is offered.
        ``installed_version`` None (nothing installed): the newest release, whatever its ``min_version``."""
        skipped = {v for v in (_version_or_none(s) for s in skip) if v is not None}
        installed = None if installed_version is None else Version(str(installed_version))
        candidates = [
            r
            for r in self.releases
            if r.parsed_version not in skipped
            and (installed is None or (r.parsed_version > installed and Version(r.min_version) <= installed))
        ]
        return max(candidates, key=lambda r: r.parsed_version, default=None)


def _version_or_none(value: str) -> Version | None:
    try:
        return Version(str(value))
    except InvalidVersion:
        return None


def parse_signed(signed: Any) -> Index:
    """Check the ``signed`` part of an index; an :class:`Index` (not verified: see :func:`verify_index`)."""
    if not isinstance(signed, Mapping):
        raise UpdateRefused("the channel index is malformed: signed must be an object")
    fmt = signed.get("format")
    if type(fmt) is not int:
        raise UpdateRefused("the channel index is malformed: it has no format number")
    if fmt != FORMAT:
        raise UpdateRefused(
            f"the channel index is in format {fmt}, and this updater reads format {FORMAT} only: "
            "install a newer release from a bundle file, or ask the update server's operator"
        )
    channel = signed.get("channel")
    if not isinstance(channel, str) or not _CHANNEL.fullmatch(channel):
        raise UpdateRefused(f"the channel index is malformed: channel {channel!r} is not a channel name")
    serial = signed.get("serial")
    if type(serial) is not int or serial < 0:
        raise UpdateRefused("the channel index is malformed: serial must be a whole number")
    expires = _utc_time(signed.get("expires"), "expires")
    releases = signed.get("releases")
    if not isinstance(releases, list):
        raise UpdateRefused("the channel index is malformed: releases must be a list")
    parsed = [_release(entry, number) for number, entry in enumerate(releases, 1)]
    seen: set[Version] = set()
    for release in parsed:
        if release.parsed_version in seen:
            raise UpdateRefused(f"the channel index lists release {release.version} twice")
        seen.add(release.parsed_version)
    keys = signed.get("keys", [])
    if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
        raise UpdateRefused("the channel index is malformed: keys must be a list of key statements")
    return Index(channel, serial, expires, tuple(parsed), tuple(keys))


def _utc_time(value: Any, name: str) -> datetime:
    try:
        if not isinstance(value, str):
            raise ValueError
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if when.tzinfo is None:
            raise ValueError
    except ValueError:
        raise UpdateRefused(
            f"the channel index is malformed: {name} {value!r} is not an ISO 8601 UTC time"
        ) from None
    return when.astimezone(UTC)


def _release(entry: Any, number: int) -> Release:
    where = f"the channel index's release {number}"
    if not isinstance(entry, Mapping):
        raise UpdateRefused(f"{where} is not an object")

    def text(name: str) -> str:
        value = entry.get(name)
        if not isinstance(value, str):
            raise UpdateRefused(f"{where}: {name} must be text")
        return value

    version, min_version, file, sha256 = text("version"), text("min_version"), text("file"), text("sha256")
    for name, value in (("version", version), ("min_version", min_version)):
        if _version_or_none(value) is None:
            raise UpdateRefused(f"{where}: {name} {value!r} is not a version number")
    parts = urlsplit(file)
    if (
        not file
        or parts.scheme
        or parts.netloc
        or file.startswith("/")
        or ".." in PurePosixPath(parts.path).parts
    ):
        raise UpdateRefused(f"{where}: file {file!r} must be a URL relative to the index, inside its folder")
    if not _SHA256.fullmatch(sha256):
        raise UpdateRefused(f"{where}: sha256 must be 64 lowercase hex digits")
    size = entry.get("size")
    if type(size) is not int or size < 0:
        raise UpdateRefused(f"{where}: size must be a number of bytes")
    notes = entry.get("notes", "")
    if not isinstance(notes, str):
        raise UpdateRefused(f"{where}: notes must be text")
    return Release(version, min_version, file, sha256, size, notes)


def make_signed(
    channel: str,
    serial: int,
    expires: datetime,
    releases: Iterable[Release],
    keys: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The ``signed`` part of an index, releases sorted newest first."""
    ordered = sorted(releases, key=lambda r: r.parsed_version, reverse=True)
    return {
        "format": FORMAT,
        "channel": channel,
        "serial": serial,
        "expires": expires.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "releases": [r.to_dict() for r in ordered],
        "keys": list(keys),
    }


def sign_index(signed: Mapping[str, Any], key: Ed25519PrivateKey | Sequence[Ed25519PrivateKey]) -> bytes:
    """A complete ``index.json``: ``signed`` (checked first) with a signature by each key (several keys
    while a rotation is under way, so appliances on either side of it accept the index)."""
    parse_signed(signed)
    keys = [key] if isinstance(key, Ed25519PrivateKey) else list(key)
    if not keys:
        raise ValueError("an index needs at least one signing key")
    data = canonical(dict(signed))
    document = {"signed": dict(signed), "signatures": [sign(data, k) for k in keys]}
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def verify_index(
    data: bytes,
    keyring: Keyring,
    *,
    channel: str,
    last_serial: int | None = None,
    now: datetime | float | None = None,
) -> Index:
    """Check a downloaded ``index.json``; the :class:`Index`, or :class:`UpdateRefused`. Nothing is saved.

    The index's key statements are applied to a copy of ``keyring`` first (each is signed by a trusted key
    on its own), so an index signed by a freshly endorsed key verifies; the caller makes them permanent
    with ``keyring.accept(index.keys)`` and remembers ``index.serial`` as the next ``last_serial`` (an
    equal serial is accepted: the same index fetched again). ``now`` is a datetime or a Unix time.
    """
    if len(data) > MAX_INDEX_BYTES:
        raise UpdateRefused(
            f"the channel index is {len(data)} bytes long, more than {MAX_INDEX_BYTES}: refused"
        )
    try:
        document = json.loads(data, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as e:
        raise UpdateRefused(
            f"the channel index is not valid JSON ({e}): the download was cut or damaged"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("signed"), dict):
        raise UpdateRefused("this is not a channel index: it has no signed part")
    signed = document["signed"]
    statements = signed.get("keys", [])
    checker = keyring.preview(statements) if isinstance(statements, list) and statements else keyring
    signed_by = checker.verify_any(canonical(signed), document.get("signatures"), "channel index")
    index = parse_signed(signed)
    index = Index(index.channel, index.serial, index.expires, index.releases, index.keys, signed_by)

    if index.channel != channel:
        raise UpdateRefused(
            f"the channel index is for the {index.channel!r} channel, not {channel!r}: the update server "
            f"serves another channel's index in its place (a mix-up on the server, or an attack)"
        )
    if last_serial is not None and index.serial < last_serial:
        raise UpdateRefused(
            f"the {channel} channel index has serial {index.serial}, older than serial {last_serial} seen "
            "before: someone may be replaying an old index to hold back updates (a rollback attack), or the "
            "update server was restored from an old copy; nothing is installed from it"
        )
    moment = _now(now)
    if index.expires <= moment:
        raise UpdateRefused(
            f"the {channel} channel index expired at {index.expires:%Y-%m-%d %H:%M} UTC (it is now "
            f"{moment:%Y-%m-%d %H:%M} UTC): the update server no longer refreshes it, or someone is serving "
            "an old copy to hide newer releases (a freeze attack); try again later, or tell the update "
            "server's operator"
        )
    return index


def _now(now: datetime | float | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if isinstance(now, datetime):
        return now if now.tzinfo else now.replace(tzinfo=UTC)
    return datetime.fromtimestamp(now, UTC)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
