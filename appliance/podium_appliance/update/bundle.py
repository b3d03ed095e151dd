"""Update bundles: ``podium-<version>.bundle``, a signed manifest and a payload in one uncompressed tar.

A bundle has exactly three regular-file members, in this order (the order lets a reader check the
signature before it reads a byte of the payload, as RAUC's verity bundles do):

- ``manifest.json``: what the bundle is (version, channel, the lowest version it upgrades from, the
  payload's SHA-256 and size, the wheels, release notes, key statements for rotation);
- ``manifest.sig``: a signature ``{"key_id", "signature"}`` over the exact bytes of ``manifest.json``;
- ``payload.tar``: an uncompressed tar of ``wheels/*.whl`` (Podium's wheel and every dependency's) and
  ``rootfs/...`` (the appliance's own files).

Both tars are plain POSIX ustar, read here by a strict parser of our own rather than :mod:`tarfile`: a
bundle comes from outside, and only files, folders and plain headers are accepted (no links, devices or
tar extensions), so a header cannot make the reader allocate, seek or write where it should not. The
payload is never held in memory: it is hashed, and later unpacked, as a stream.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import stat
import sys
import sysconfig
import tarfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from packaging.version import InvalidVersion, Version

from ..errors import ApplianceError
from ..layout import fsync_tree
from .signing import Keyring, UpdateRefused, canonical, parse_signature, sign
from .ustar import BLOCK, CHUNK, Reader, padded, parse_header, unpack

FORMAT = 1
NAME = "podium"
MEMBERS = ("manifest.json", "manifest.sig", "payload.tar")
#: A manifest is a few kilobytes (release notes included); a signature, about a hundred bytes.
MAX_MANIFEST_BYTES = 1 << 20
MAX_SIGNATURE_BYTES = 4096
#: What extraction keeps free besides the payload itself.
SPACE_MARGIN = 16 << 20
_CHANNEL = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_WHEEL = re.compile(r"[A-Za-z0-9_.+!-]+\.whl")


def this_python() -> str:
    """The running Python's version as bundles name it (``3.11``)."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def this_platform() -> str:
    """The machine's platform as bundles name it (``linux_x86_64``), the tag of its binary wheels."""
    return sysconfig.get_platform().replace("-", "_").replace(".", "_")


def bundle_name(version: str) -> str:
    return f"{NAME}-{version}.bundle"


# The manifest


@dataclass(frozen=True)
class Manifest:
    """A bundle's manifest. ``signed_by`` is not part of it: :func:`verify_bundle` fills it in."""

    version: str
    channel: str
    min_version: str
    created: str
    python: str
    platform: str
    payload_sha256: str
    payload_size: int
    wheels: tuple[str, ...]
    notes: str
    keys: tuple[dict[str, Any], ...] = ()
    format: int = FORMAT
    name: str = NAME
    signed_by: str = field(default="", compare=False)

    @property
    def parsed_version(self) -> Version:
        return Version(self.version)

    @property
    def parsed_min_version(self) -> Version:
        return Version(self.min_version)

    def to_dict(self) -> dict[str, Any]:
        """The manifest as ``manifest.json`` holds it."""
        fields = asdict(self)
        fields.pop("signed_by")
        fields["payload"] = {"sha256": fields.pop("payload_sha256"), "size": fields.pop("payload_size")}
        fields["wheels"], fields["keys"] = list(self.wheels), list(self.keys)
        return fields

    @classmethod
    def from_json(cls, data: bytes | str | Mapping[str, Any]) -> Manifest:
        """Parse and check a manifest; unknown fields are ignored (they are signed, and a newer format that
        an older updater must not misread says so with a new ``format`` number)."""
        if isinstance(data, (bytes, str)):
            try:
                data = json.loads(data)
            except (ValueError, UnicodeDecodeError) as e:
                raise UpdateRefused(f"the bundle's manifest is not valid JSON: {e}") from None
        if not isinstance(data, Mapping):
            raise UpdateRefused("the bundle's manifest is not a JSON object")
        fmt = data.get("format")
        if type(fmt) is not int:
            raise UpdateRefused(
                "the bundle's manifest has no format number: it is not a Podium bundle manifest"
            )
        if fmt != FORMAT:
            raise UpdateRefused(
                f"the bundle is in format {fmt}, and this updater reads format {FORMAT} only: "
                "update to an intermediate release first, or get a bundle made for this version"
            )

        def text(name: str, pattern: re.Pattern[str] | None = None) -> str:
            value = data.get(name)
            if not isinstance(value, str):
                raise UpdateRefused(f"the bundle's manifest: {name} must be text, not {_kind(value)}")
            if pattern is not None and not pattern.fullmatch(value):
                raise UpdateRefused(f"the bundle's manifest: {name} {value!r} is not valid")
            return value

        if text("name") != NAME:
            raise UpdateRefused(f"the bundle is for {data['name']!r}, not {NAME}")
        version, min_version = text("version"), text("min_version")
        for name, value in (("version", version), ("min_version", min_version)):
            try:
                Version(value)
            except InvalidVersion:
                raise UpdateRefused(
                    f"the bundle's manifest: {name} {value!r} is not a version number"
                ) from None
        created = text("created")
        try:
            if datetime.fromisoformat(created.replace("Z", "+00:00")).tzinfo is None:
                raise ValueError
        except ValueError:
            raise UpdateRefused(
                f"the bundle's manifest: created {created!r} is not an ISO 8601 UTC time"
            ) from None
        payload = data.get("payload")
        if not isinstance(payload, Mapping):
            raise UpdateRefused("the bundle's manifest: payload must be an object with sha256 and size")
        sha256, size = payload.get("sha256"), payload.get("size")
        if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
            raise UpdateRefused("the bundle's manifest: payload.sha256 must be 64 lowercase hex digits")
        if type(size) is not int or size < 0:
            raise UpdateRefused("the bundle's manifest: payload.size must be a number of bytes")
        wheels, keys = data.get("wheels"), data.get("keys", [])
        if not isinstance(wheels, list) or not all(
            isinstance(w, str) and _WHEEL.fullmatch(w) for w in wheels
        ):
            raise UpdateRefused("the bundle's manifest: wheels must be a list of wheel file names")
        if not isinstance(keys, list) or not all(isinstance(k, dict) for k in keys):
            raise UpdateRefused("the bundle's manifest: keys must be a list of key statements")
        return cls(
            version=version,
            channel=text("channel", _CHANNEL),
            min_version=min_version,
            created=created,
            python=text("python"),
            platform=text("platform"),
            payload_sha256=sha256,
            payload_size=size,
            wheels=tuple(wheels),
            notes=text("notes"),
            keys=tuple(keys),
        )


def _kind(value: Any) -> str:
    return "missing" if value is None else type(value).__name__


# Reading the outer tar


@dataclass(frozen=True)
class _Member:
    name: str
    offset: int  # of its data
    size: int


def _members(f: IO[bytes], size: int) -> list[_Member]:
    """The three members of a bundle, their order, types and sizes checked against the file's length.

    Nothing is read from the payload: its extent is checked by seeking, and only the end-of-archive blocks
    after it are read.
    """
    if size < BLOCK:
        raise UpdateRefused(
            f"this is not a Podium bundle: it is {size} bytes long, shorter than a tar header"
            if size
            else "this is not a Podium bundle: the file is empty"
        )
    members: list[_Member] = []
    position = 0
    for number, expected in enumerate(MEMBERS, 1):
        where = f"the bundle's member {number} ({expected} expected)"
        if size < position + BLOCK:
            raise UpdateRefused(
                f"the bundle is truncated: at least {position + BLOCK - size} bytes are missing "
                f"(it ends before the header of {expected})"
            )
        f.seek(position)
        try:
            header = parse_header(f.read(BLOCK), where)
        except UpdateRefused as e:
            if number == 1:
                raise UpdateRefused(f"this is not a Podium bundle (not a tar archive): {e.message}") from None
            raise
        if header is None:
            raise UpdateRefused(
                f"the bundle ends after {number - 1} member(s): it lacks {', '.join(MEMBERS[number - 1 :])} "
                f"(a bundle holds {', '.join(MEMBERS)}, in this order)"
            )
        if not header.is_file:
            raise UpdateRefused(
                f"the bundle's member {number}, {header.name!r}, is a {header.kind}: a bundle holds only "
                "regular files"
            )
        if header.name != expected:
            if number == 1 and header.name not in MEMBERS:
                raise UpdateRefused(
                    f"this is not a Podium bundle: it is a tar archive whose first member is {header.name!r}, "
                    "not manifest.json"
                )
            raise UpdateRefused(
                f"the bundle's member {number} is {header.name!r} where {expected} belongs: a bundle holds "
                f"{', '.join(MEMBERS)}, exactly, in this order"
            )
        limit = {"manifest.json": MAX_MANIFEST_BYTES, "manifest.sig": MAX_SIGNATURE_BYTES}.get(expected)
        if limit is not None and header.size > limit:
            raise UpdateRefused(
                f"the bundle's {expected} claims {header.size} bytes, more than the {limit} one can have: "
                "the file is damaged or was not made by make bundle"
            )
        offset = position + BLOCK
        members.append(_Member(expected, offset, header.size))
        position = offset + padded(header.size)
        if number == len(MEMBERS) and size < position + 2 * BLOCK:
            raise UpdateRefused(
                f"the bundle is truncated: {position + 2 * BLOCK - size} bytes are missing "
                f"(it is {size} bytes long; its headers make it at least {position + 2 * BLOCK})"
            )
    _check_end(f, position, size)
    return members


def _check_end(f: IO[bytes], position: int, size: int) -> None:
    """After the payload come only zeros: the end-of-archive blocks and the tar's record padding."""
    f.seek(position)
    extra = parse_header(f.read(BLOCK), "the data after payload.tar") if size > position else None
    if extra is not None:
        raise UpdateRefused(
            f"the bundle has an extra member {extra.name!r} after payload.tar: a bundle holds exactly "
            f"{', '.join(MEMBERS)}"
        )
    if size - position > MAX_MANIFEST_BYTES:
        raise UpdateRefused(f"the bundle has {size - position} bytes after its last member: it is not one")
    if f.read(size - position).strip(b"\0"):
        raise UpdateRefused("the bundle has unexpected data after its end-of-archive marker")


def _open_bundle(path: Path) -> tuple[IO[bytes], list[_Member]]:
    try:
        if stat.S_ISDIR(path.stat().st_mode):
            raise UpdateRefused(f"{path} is a folder, not a bundle")
        if not stat.S_ISREG(path.stat().st_mode):  # opening a FIFO would wait for a writer
            raise UpdateRefused(f"{path} is not a regular file, so not a bundle")
        f = path.open("rb")
    except FileNotFoundError:
        raise UpdateRefused(f"there is no bundle at {path}") from None
    except OSError as e:
        raise UpdateRefused(f"cannot read the bundle {path}: {e.strerror}") from e
    try:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise UpdateRefused(f"{path} is not a regular file, so not a bundle")
        return f, _members(f, st.st_size)
    except BaseException:
        f.close()
        raise


# Verifying


def verify_bundle(
    path: Path,
    keyring: Keyring,
    *,
    channel: str | None = None,
    installed_version: str | Version | None = None,
    force: bool = False,
    platform: str | None = None,
    python: str | None = None,
) -> Manifest:
    """Check a bundle from end to end, changing nothing; its manifest, or :class:`UpdateRefused`.

    In order: the tar's shape (three regular files, in order, nothing after, nothing missing), the
    manifest's signature (with ``keyring`` plus the manifest's own key statements, which are each signed by
    a trusted key: accepting them for good is the caller's move, with ``keyring.accept(manifest.keys)``
    once it installs), then what the signed manifest says against this appliance (channel, versions,
    Python, platform), and last the payload's size and SHA-256, read as a stream.

    ``channel``: the channel asked for (None: any); ``installed_version``: the running release (None: no
    version check); ``force`` lets a downgrade or a reinstall through, nothing else; ``platform`` and
    ``python`` default to this machine's.
    """
    f, members = _open_bundle(path)
    with f:
        manifest_member, signature_member, payload_member = members
        f.seek(manifest_member.offset)
        manifest_bytes = f.read(manifest_member.size)
        f.seek(signature_member.offset)
        signature_bytes = f.read(signature_member.size)

        # The manifest's key statements are read before its signature is checked: each is signed on its
        # own by a trusted key, so nothing in them is taken on the manifest's word.
        try:
            signature = json.loads(signature_bytes)
        except (ValueError, UnicodeDecodeError):
            raise UpdateRefused("the bundle's manifest.sig is not a signature (not JSON)") from None
        parse_signature(signature, "bundle's manifest")
        statements = _statements(manifest_bytes)
        checker = keyring.preview(statements) if statements else keyring
        signed_by = checker.verify(manifest_bytes, signature, "bundle's manifest")
        manifest = replace(Manifest.from_json(manifest_bytes), signed_by=signed_by)

        check_applicable(
            manifest,
            channel=channel,
            installed_version=installed_version,
            force=force,
            platform=platform,
            python=python,
        )
        if payload_member.size != manifest.payload_size:
            raise UpdateRefused(
                f"payload.tar is {payload_member.size} bytes where the signed manifest says "
                f"{manifest.payload_size}: the bundle was tampered with or damaged after signing"
            )
        f.seek(payload_member.offset)
        digest = hashlib.sha256()
        remaining = payload_member.size
        while remaining:
            chunk = f.read(min(CHUNK, remaining))
            if not chunk:
                raise UpdateRefused(f"the bundle is truncated: {remaining} bytes of payload.tar are missing")
            digest.update(chunk)
            remaining -= len(chunk)
        _check_digest(digest.hexdigest(), manifest)
    return manifest


def _statements(manifest_bytes: bytes) -> list[Any]:
    try:
        data = json.loads(manifest_bytes)
    except (ValueError, UnicodeDecodeError):
        raise UpdateRefused("the bundle's manifest is not valid JSON") from None
    keys = data.get("keys", []) if isinstance(data, dict) else []
    if not isinstance(keys, list):
        raise UpdateRefused("the bundle's manifest: keys must be a list of key statements")
    return keys


def _check_digest(actual: str, manifest: Manifest) -> None:
    if actual != manifest.payload_sha256:
        raise UpdateRefused(
            f"the payload's SHA-256 is {actual[:16]}…, not the {manifest.payload_sha256[:16]}… the signed "
            "manifest names: the bundle was tampered with or damaged after signing"
        )


def check_applicable(
    manifest: Manifest,
    *,
    channel: str | None = None,
    installed_version: str | Version | None = None,
    force: bool = False,
    platform: str | None = None,
    python: str | None = None,
) -> None:
    """Refuse a (verified) manifest that does not fit this appliance; see :func:`verify_bundle`."""
    if channel is not None and manifest.channel != channel:
        raise UpdateRefused(
            f"the bundle is for the {manifest.channel!r} channel, not {channel!r} as asked: get the bundle "
            f"of the {channel} channel, or switch this appliance to the {manifest.channel} channel"
        )
    python = python or this_python()
    if manifest.python != python:
        raise UpdateRefused(
            f"the bundle is built for Python {manifest.python}, and this appliance runs Python {python}"
        )
    platform = platform or this_platform()
    if manifest.platform != platform:
        raise UpdateRefused(
            f"the bundle is built for {manifest.platform}, and this appliance is {platform}: its wheels "
            "would not run here"
        )
    if installed_version is None:
        return
    installed = Version(str(installed_version))
    version = manifest.parsed_version
    if installed < manifest.parsed_min_version:
        raise UpdateRefused(
            f"Podium {version} upgrades from {manifest.min_version} or later, and {installed} is installed: "
            f"install a release between them first"
        )
    if version < installed and not force:
        raise UpdateRefused(
            f"the bundle holds Podium {version}, older than the installed {installed}: a downgrade is "
            "refused unless forced (--force)"
        )
    if version == installed and not force:
        raise UpdateRefused(
            f"Podium {version} is installed already: reinstalling it is refused unless forced (--force)"
        )


# Unpacking


def extract_payload(path: Path, manifest: Manifest, dest: Path) -> None:
    """Unpack a verified bundle's payload into ``dest`` (which must not exist), hashing it again on the way:
    if the payload differs from the manifest (the file was swapped since :func:`verify_bundle`), ``dest`` is
    removed and :class:`UpdateRefused` raised. Files are flushed to disk before this returns.

    Only folders and regular files with relative names inside ``dest`` are unpacked; permissions are kept
    but for setuid, setgid, sticky and group/other write bits.
    """
    if os.path.lexists(dest):
        raise UpdateRefused(f"{dest} exists already: the payload is unpacked into a new folder")
    check_space(dest.parent, manifest.payload_size)
    f, members = _open_bundle(path)
    with f:
        payload = members[2]
        if payload.size != manifest.payload_size:
            raise UpdateRefused(
                f"payload.tar is {payload.size} bytes where the signed manifest says {manifest.payload_size}: "
                "the bundle was changed since it was verified"
            )
        dest.mkdir(parents=True)
        try:
            f.seek(payload.offset)
            reader = Reader(f, payload.size)
            try:
                unpack(reader, dest.resolve())
            except UpdateRefused:
                reader.drain()  # a payload other than the signed one says so, rather than what broke in it
                _check_digest(reader.digest.hexdigest(), manifest)
                raise
            reader.drain()
            _check_digest(reader.digest.hexdigest(), manifest)
            missing = [w for w in manifest.wheels if not (dest / "wheels" / w).is_file()]
            if missing:
                raise UpdateRefused(f"the payload lacks wheels its manifest lists: {', '.join(missing)}")
            fsync_tree(dest)
        except OSError as e:
            shutil.rmtree(dest, ignore_errors=True)
            raise UpdateRefused(f"cannot unpack the payload into {dest}: {e}") from e
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise


def check_space(folder: Path, needed: int) -> None:
    """Refuse when the file system of ``folder`` (or its nearest existing parent) lacks ``needed`` bytes."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed + SPACE_MARGIN:
        raise UpdateRefused(
            f"too little disk space in {existing}: unpacking the update needs {mib(needed + SPACE_MARGIN)}, "
            f"and {mib(free)} are free; remove old releases or backups, or grow the disk"
        )


def mib(size: int) -> str:
    """A size for people: ``512 MiB``."""
    return f"{size / (1 << 20):.0f} MiB"


# Writing


def write_payload(payload_dir: Path, out: Path, mtime: int = 0) -> tuple[str, int]:
    """Pack ``payload_dir`` as payload.tar into ``out`` (sorted, owned by root, mode 0644 or 0755); its
    SHA-256 and size. Links and special files are refused: the appliance would not unpack them."""
    source = Path(payload_dir)
    entries: list[Path] = []
    for folder, dirs, files in os.walk(source):
        dirs.sort()
        base = Path(folder)
        entries += [base / d for d in dirs] + [base / name for name in sorted(files)]
    with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as tar:
        for entry in entries:
            name = entry.relative_to(source).as_posix()
            mode = entry.lstat().st_mode
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = mtime, 0, 0, "", ""
            if stat.S_ISDIR(mode):
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                _add(tar, info, None, name)
            elif stat.S_ISREG(mode):
                info.size, info.mode = entry.stat().st_size, 0o755 if mode & 0o111 else 0o644
                with entry.open("rb") as data:
                    _add(tar, info, data, name)
            else:
                raise ApplianceError(
                    f"{entry} is a link or a special file: a payload holds only files and folders"
                )
    return _hash_file(out)


def _add(tar: tarfile.TarFile, info: tarfile.TarInfo, data: IO[bytes] | None, name: str) -> None:
    try:
        tar.addfile(info, data)
    except ValueError as e:
        raise ApplianceError(f"cannot put {name!r} into the payload: {e}") from e


def _hash_file(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def write_bundle(
    out_path: Path,
    manifest_fields: Mapping[str, Any],
    payload_dir: Path,
    key: Ed25519PrivateKey,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Write a signed bundle; its path.

    ``out_path`` is the bundle file, or an existing folder to write ``podium-<version>.bundle`` into.
    ``manifest_fields``: ``version``, ``channel``, ``min_version``, ``notes`` and optionally ``keys``,
    ``created``, ``python``, ``platform`` (this machine's by default); the payload's hash and size and the
    list of wheels (``payload_dir/wheels``) are filled in. The file appears whole or not at all.
    """
    say = progress or (lambda _: None)
    now = datetime.now(UTC).replace(microsecond=0)
    fields: dict[str, Any] = {
        "format": FORMAT,
        "name": NAME,
        "created": now.isoformat().replace("+00:00", "Z"),
        "python": this_python(),
        "platform": this_platform(),
        "keys": [],
        **manifest_fields,
    }
    version = str(fields.get("version", ""))
    out = Path(out_path)
    if out.is_dir():
        out = out / bundle_name(version)
    wheels_dir = Path(payload_dir) / "wheels"
    fields["wheels"] = sorted(p.name for p in wheels_dir.glob("*.whl")) if wheels_dir.is_dir() else []
    fields["payload"] = {"sha256": "0" * 64, "size": 0}
    Manifest.from_json(fields)  # refuse a bad field before packing anything

    out.parent.mkdir(parents=True, exist_ok=True)
    payload_tmp = out.with_name(f".{out.name}.payload{os.getpid()}")
    bundle_tmp = out.with_name(f".{out.name}.tmp{os.getpid()}")
    try:
        say(f"packing the payload ({len(fields['wheels'])} wheels)")
        created = datetime.fromisoformat(str(fields["created"]).replace("Z", "+00:00"))
        sha256, size = write_payload(Path(payload_dir), payload_tmp, int(created.timestamp()))
        fields["payload"] = {"sha256": sha256, "size": size}
        manifest = Manifest.from_json(fields)
        manifest_bytes = json.dumps(manifest.to_dict(), indent=2, sort_keys=True, ensure_ascii=False).encode()
        signature_bytes = canonical(sign(manifest_bytes, key))
        say(f"writing {out.name} ({mib(size)} of payload)")
        with tarfile.open(bundle_tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in (("manifest.json", manifest_bytes), ("manifest.sig", signature_bytes)):
                info = _member_info(name, len(data), created)
                tar.addfile(info, io.BytesIO(data))
            with payload_tmp.open("rb") as payload:
                tar.addfile(_member_info("payload.tar", size, created), payload)
        with bundle_tmp.open("rb") as written:
            os.fsync(written.fileno())
        os.replace(bundle_tmp, out)
    finally:
        payload_tmp.unlink(missing_ok=True)
        bundle_tmp.unlink(missing_ok=True)
    return out


def _member_info(name: str, size: int, created: datetime) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o644, int(created.timestamp())
    info.uid, info.gid, info.uname, info.gname = 0, 0, "", ""
    return info


def read_manifest(path: Path) -> Manifest:
    """A bundle's manifest, its signature NOT checked: for release tools and listings, never to install."""
    f, members = _open_bundle(path)
    with f:
        f.seek(members[0].offset)
        return Manifest.from_json(f.read(members[0].size))


def iter_bundles(folder: Path) -> Iterator[Path]:
    """The ``podium-*.bundle`` files of a folder, sorted by name."""
    yield from sorted(Path(folder).glob(f"{NAME}-*.bundle"))
