"""Bundles: written, verified and unpacked; each refusal with its message, and nothing left behind."""

from __future__ import annotations

import json
import shutil
import stat
import tarfile
from pathlib import Path

import pytest

from podium_appliance.update import bundle as bundle_module
from podium_appliance.update.bundle import (
    Manifest,
    extract_payload,
    read_manifest,
    verify_bundle,
    write_bundle,
)
from podium_appliance.update.signing import (
    Keyring,
    UpdateRefused,
    canonical,
    endorse,
    generate_private_key,
    key_id,
    sign,
)

from .helpers import fields, manifest_for, payload_dir, raw_bundle, tar_bytes


def refusal(path: Path, keyring: Keyring, **kwargs: object) -> str:
    with pytest.raises(UpdateRefused) as refused:
        verify_bundle(path, keyring, **kwargs)  # type: ignore[arg-type]
    return refused.value.message


def members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def rebuild(path: Path, parts: dict[str, bytes]) -> Path:
    path.write_bytes(tar_bytes(list(parts.items())))
    return path


# Round trip


def test_bundle_round_trip(make_bundle, keyring, key, tmp_path):
    path = make_bundle("0.2.0")
    assert path.name == "podium-0.2.0.bundle"
    with tarfile.open(path) as tar:
        assert [(m.name, m.type) for m in tar.getmembers()] == [
            ("manifest.json", tarfile.REGTYPE),
            ("manifest.sig", tarfile.REGTYPE),
            ("payload.tar", tarfile.REGTYPE),
        ]
    manifest = verify_bundle(path, keyring, channel="stable", installed_version="0.1.0")
    assert manifest.version == "0.2.0" and manifest.channel == "stable" and manifest.min_version == "0.1.0"
    assert manifest.wheels == ("podium-0.2.0-py3-none-any.whl",)
    assert manifest.notes == "# Notes\n" and manifest.signed_by == key_id(key.public_key())
    assert manifest.created.endswith("Z") and manifest.format == 1 and manifest.name == "podium"
    assert manifest == read_manifest(path)
    assert Manifest.from_json(json.dumps(manifest.to_dict())) == manifest

    dest = tmp_path / "releases" / "0.2.0"
    extract_payload(path, manifest, dest)
    source = tmp_path / "bundle1" / "payload"
    for name in ["wheels/podium-0.2.0-py3-none-any.whl", "rootfs/etc/podium/appliance.toml"]:
        assert (dest / name).read_bytes() == (source / name).read_bytes()
    tool = dest / "rootfs/usr/bin/podium-tool"
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755  # setuid and group write dropped, exec kept
    assert stat.S_IMODE((dest / "rootfs/etc/podium/appliance.toml").stat().st_mode) == 0o644


def test_manifest_signature_is_over_the_exact_manifest_bytes(make_bundle, keyring):
    parts = members(make_bundle())
    signature = json.loads(parts["manifest.sig"])
    assert keyring.verify(parts["manifest.json"], signature)


def test_write_bundle_refuses_links_in_the_payload(tmp_path, key):
    payload = payload_dir(tmp_path / "payload")
    (payload / "rootfs/etc/link").symlink_to("/etc/passwd")
    with pytest.raises(Exception, match="is a link or a special file"):
        write_bundle(tmp_path / "out.bundle", fields(), payload, key)
    assert list(tmp_path.glob("*.bundle")) == [] and list(tmp_path.glob(".*")) == []


def test_write_bundle_refuses_a_bad_field_before_packing(tmp_path, key):
    with pytest.raises(UpdateRefused, match="version 'latest!' is not a version number"):
        write_bundle(tmp_path / "out.bundle", fields("latest!"), payload_dir(tmp_path / "payload"), key)


# Not a bundle, or a damaged one


def test_refuses_what_is_not_a_bundle(tmp_path, keyring):
    empty = tmp_path / "empty.bundle"
    empty.write_bytes(b"")
    assert refusal(empty, keyring) == "this is not a Podium bundle: the file is empty"
    text = tmp_path / "text.bundle"
    text.write_bytes(b"hello " * 200)
    assert refusal(text, keyring).startswith("this is not a Podium bundle (not a tar archive)")
    other = tmp_path / "other.tar"
    other.write_bytes(tar_bytes([("README", b"hi")]))
    assert refusal(other, keyring) == (
        "this is not a Podium bundle: it is a tar archive whose first member is 'README', not manifest.json"
    )
    assert refusal(tmp_path / "missing.bundle", keyring).startswith("there is no bundle at")
    assert refusal(tmp_path, keyring).endswith("is a folder, not a bundle")


def test_refuses_members_in_the_wrong_order(make_bundle, keyring):
    path = make_bundle()
    parts = members(path)
    rebuild(path, {k: parts[k] for k in ["manifest.json", "payload.tar", "manifest.sig"]})
    assert refusal(path, keyring) == (
        "the bundle's member 2 is 'payload.tar' where manifest.sig belongs: a bundle holds manifest.json, "
        "manifest.sig, payload.tar, exactly, in this order"
    )


def test_refuses_a_missing_member(make_bundle, keyring):
    path = make_bundle()
    parts = members(path)
    rebuild(path, {k: parts[k] for k in ["manifest.json", "manifest.sig"]})
    assert refusal(path, keyring) == (
        "the bundle ends after 2 member(s): it lacks payload.tar (a bundle holds manifest.json, manifest.sig, "
        "payload.tar, in this order)"
    )


def test_refuses_an_extra_member(make_bundle, keyring):
    path = make_bundle()
    path.write_bytes(tar_bytes([*members(path).items(), ("extra.sh", b"rm -rf /")]))
    assert refusal(path, keyring) == (
        "the bundle has an extra member 'extra.sh' after payload.tar: a bundle holds exactly manifest.json, "
        "manifest.sig, payload.tar"
    )


def test_refuses_data_hidden_after_the_end(make_bundle, keyring):
    path = make_bundle()
    with path.open("ab") as f:
        f.write(b"\0" * 1024 + b"surprise")
    assert refusal(path, keyring) == "the bundle has unexpected data after its end-of-archive marker"


def test_refuses_links_as_members(make_bundle, keyring):
    path = make_bundle()
    parts = members(path)
    link = tarfile.TarInfo("manifest.sig")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/shadow"
    path.write_bytes(tar_bytes([("manifest.json", parts["manifest.json"]), link]))
    assert refusal(path, keyring) == (
        "the bundle's member 2, 'manifest.sig', is a symbolic link: a bundle holds only regular files"
    )


def test_refuses_a_truncated_bundle_saying_how_much_is_missing(make_bundle, keyring):
    path = make_bundle()
    with tarfile.open(path) as tar:
        payload, signature = tar.getmember("payload.tar"), tar.getmember("manifest.sig")
    payload_end = payload.offset_data + payload.size
    data = path.read_bytes()
    path.write_bytes(data[: payload_end - 1000])  # a download cut inside the payload
    missing = 1000 + (-payload.size % 512) + 2 * 512  # its data, its padding, the end-of-archive blocks
    assert refusal(path, keyring) == (
        f"the bundle is truncated: {missing} bytes are missing (it is {payload_end - 1000} bytes long; its "
        f"headers make it at least {payload_end - 1000 + missing})"
    )
    path.write_bytes(data[:700])  # cut inside manifest.json
    assert refusal(path, keyring) == (
        f"the bundle is truncated: at least {signature.offset + 512 - 700} bytes are missing (it ends before "
        "the header of manifest.sig)"
    )


def test_refuses_absurd_sizes_in_headers(make_bundle, keyring):
    path = make_bundle()
    data = bytearray(path.read_bytes())

    def with_size(field: bytes) -> bytes:
        header = bytearray(data[:512])
        header[124:136] = field
        header[148:156] = b" " * 8
        header[148:156] = f"{sum(header):06o}\0 ".encode()
        return bytes(header) + bytes(data[512:])

    path.write_bytes(with_size(b"77777777777\0"))
    assert refusal(path, keyring) == (
        "the bundle's manifest.json claims 8589934591 bytes, more than the 1048576 one can have: the file is "
        "damaged or was not made by make bundle"
    )
    path.write_bytes(with_size(b"\x80" + b"\xff" * 11))
    assert "uses a base-256 number" in refusal(path, keyring)


def test_refuses_a_damaged_header(make_bundle, keyring):
    path = make_bundle()
    data = bytearray(path.read_bytes())
    data[5] ^= 0xFF  # in manifest.json's name: the header checksum no longer matches
    path.write_bytes(bytes(data))
    assert "its header checksum is wrong" in refusal(path, keyring)


# Signatures


def test_refuses_a_manifest_changed_after_signing(make_bundle, keyring, key):
    path = make_bundle()
    parts = members(path)
    manifest = json.loads(parts["manifest.json"])
    manifest["min_version"] = "0.0.1"
    parts["manifest.json"] = json.dumps(manifest, indent=2, sort_keys=True).encode()
    rebuild(path, parts)
    assert refusal(path, keyring) == (
        f"the bundle's manifest's signature does not verify with key {key_id(key.public_key())}: the file was "
        "changed after signing, or it was not signed by this key"
    )


def test_refuses_a_bundle_signed_with_an_unknown_key(make_bundle, keyring, key):
    stranger = generate_private_key()
    path = make_bundle(key=stranger)
    message = refusal(path, keyring)
    assert message.startswith(
        f"the bundle's manifest is signed with key {key_id(stranger.public_key())}, an unknown key: this "
        f"appliance trusts only {key_id(key.public_key())}."
    )


def test_refuses_a_malformed_signature_file(make_bundle, keyring):
    path = make_bundle()
    parts = members(path)
    parts["manifest.sig"] = b"not json"
    assert refusal(rebuild(path, parts), keyring) == "the bundle's manifest.sig is not a signature (not JSON)"


def test_accepts_a_bundle_signed_by_a_key_its_manifest_endorses(make_bundle, keyring, key):
    new = generate_private_key()
    path = make_bundle(key=new, keys=[endorse(new.public_key(), key, "next release key")])
    manifest = verify_bundle(path, keyring)
    assert manifest.signed_by == key_id(new.public_key())
    assert key_id(new.public_key()) not in keyring.trusted  # accepted for good only by keyring.accept
    assert keyring.accept(manifest.keys) and key_id(new.public_key()) in keyring.trusted


def test_refuses_a_forged_endorsement_in_the_manifest(make_bundle, keyring):
    attacker = generate_private_key()
    path = make_bundle(key=attacker, keys=[endorse(attacker.public_key(), attacker)])
    assert "key statement 1: the endorsement of key" in refusal(path, keyring)


# Payload


def test_refuses_a_tampered_payload(make_bundle, keyring):
    path = make_bundle()
    parts = members(path)
    payload = bytearray(parts["payload.tar"])
    payload[700] ^= 0x01  # inside the first file's data
    parts["payload.tar"] = bytes(payload)
    message = refusal(rebuild(path, parts), keyring)
    assert message.startswith("the payload's SHA-256 is ")
    assert message.endswith(
        "the signed manifest names: the bundle was tampered with or damaged after signing"
    )


def test_refuses_a_payload_of_another_size(make_bundle, keyring):
    path = make_bundle()
    parts = members(path)
    size = len(parts["payload.tar"])
    parts["payload.tar"] += b"\0" * 512
    assert refusal(rebuild(path, parts), keyring) == (
        f"payload.tar is {size + 512} bytes where the signed manifest says {size}: the bundle was tampered "
        "with or damaged after signing"
    )


# What the manifest says against this appliance


def test_refuses_another_channel(make_bundle, keyring):
    path = make_bundle(channel="latest")
    assert refusal(path, keyring, channel="stable") == (
        "the bundle is for the 'latest' channel, not 'stable' as asked: get the bundle of the stable channel, "
        "or switch this appliance to the latest channel"
    )
    assert verify_bundle(path, keyring).channel == "latest"


def test_refuses_a_downgrade_unless_forced(make_bundle, keyring):
    path = make_bundle("0.2.0")
    assert refusal(path, keyring, installed_version="0.3.0") == (
        "the bundle holds Podium 0.2.0, older than the installed 0.3.0: a downgrade is refused unless forced "
        "(--force)"
    )
    assert verify_bundle(path, keyring, installed_version="0.3.0", force=True).version == "0.2.0"


def test_refuses_the_same_version_unless_forced(make_bundle, keyring):
    path = make_bundle("0.2.0")
    assert refusal(path, keyring, installed_version="0.2") == (
        "Podium 0.2.0 is installed already: reinstalling it is refused unless forced (--force)"
    )
    assert verify_bundle(path, keyring, installed_version="0.2.0", force=True)


def test_refuses_an_installed_version_below_min_version_even_forced(make_bundle, keyring):
    path = make_bundle("0.5.0", min_version="0.3.0")
    for force in (False, True):
        assert refusal(path, keyring, installed_version="0.2.9", force=force) == (
            "Podium 0.5.0 upgrades from 0.3.0 or later, and 0.2.9 is installed: install a release between "
            "them first"
        )
    assert verify_bundle(path, keyring, installed_version="0.3.0")


def test_versions_compare_as_versions_not_text(make_bundle, keyring):
    assert verify_bundle(make_bundle("0.10.0"), keyring, installed_version="0.9.0").version == "0.10.0"
    assert verify_bundle(make_bundle("1.0.0"), keyring, installed_version="1.0.0rc1").version == "1.0.0"


def test_refuses_another_python_or_platform(make_bundle, keyring):
    assert refusal(make_bundle(python="3.12"), keyring).startswith(
        "the bundle is built for Python 3.12, and this appliance runs Python 3."
    )
    assert refusal(make_bundle(platform="linux_aarch64"), keyring, platform="linux_x86_64") == (
        "the bundle is built for linux_aarch64, and this appliance is linux_x86_64: its wheels would not run here"
    )


def test_refuses_an_unknown_format(tmp_path, keyring, key):
    path = raw_bundle(tmp_path / "b.bundle", manifest_for(b"", format=2), b"", key)
    assert refusal(path, keyring) == (
        "the bundle is in format 2, and this updater reads format 1 only: update to an intermediate release "
        "first, or get a bundle made for this version"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "version must be text, not int"),
        ({"channel": "Stable!"}, "channel 'Stable!' is not valid"),
        ({"created": "yesterday"}, "created 'yesterday' is not an ISO 8601 UTC time"),
        ({"created": "2026-01-01T00:00:00"}, "is not an ISO 8601 UTC time"),
        ({"payload": {"sha256": "x", "size": 0}}, "payload.sha256 must be 64 lowercase hex digits"),
        ({"wheels": ["../evil.whl"]}, "wheels must be a list of wheel file names"),
        ({"name": "other"}, "the bundle is for 'other', not podium"),
        ({"notes": None}, "notes must be text, not missing"),
    ],
)
def test_manifest_fields_are_checked(change, message):
    with pytest.raises(UpdateRefused, match=message.replace("(", r"\(").replace(")", r"\)")):
        Manifest.from_json(manifest_for(b"", **change))


def test_manifest_unknown_fields_are_ignored():
    assert Manifest.from_json(manifest_for(b"", later="a field of a later updater")).version == "0.2.0"


# Unpacking


def evil_bundle(tmp_path: Path, key, payload_members) -> tuple[Path, Manifest]:  # type: ignore[no-untyped-def]
    payload = tar_bytes(payload_members)
    path = raw_bundle(tmp_path / "evil.bundle", manifest_for(payload), payload, key)
    return path, verify_bundle(path, Keyring.from_keys([key.public_key()]))


def unpack_refusal(tmp_path: Path, key, payload_members) -> str:  # type: ignore[no-untyped-def]
    path, manifest = evil_bundle(tmp_path, key, payload_members)
    dest = tmp_path / "dest"
    with pytest.raises(UpdateRefused) as refused:
        extract_payload(path, manifest, dest)
    assert not dest.exists()  # nothing left behind
    return refused.value.message


def test_unpack_refuses_climbing_out_with_dotdot(tmp_path, key):
    message = unpack_refusal(tmp_path, key, [("wheels/ok.txt", b"ok"), ("rootfs/../../escape", b"x")])
    assert (
        message
        == "payload.tar's member 2: the name 'rootfs/../../escape' climbs out of the payload with '..'"
    )
    assert not (tmp_path / "escape").exists()


def test_unpack_refuses_absolute_names(tmp_path, key):
    info = tarfile.TarInfo("placeholder")
    info.size = 1
    payload = bytearray(tar_bytes([info]))
    payload[:100] = b"/etc/cron.d/evil".ljust(100, b"\0")  # tarfile would not write it
    payload[148:156] = b" " * 8
    payload[148:156] = f"{sum(payload[:512]):06o}\0 ".encode()
    path = raw_bundle(tmp_path / "evil.bundle", manifest_for(bytes(payload)), bytes(payload), key)
    manifest = verify_bundle(path, Keyring.from_keys([key.public_key()]))
    with pytest.raises(UpdateRefused) as refused:
        extract_payload(path, manifest, tmp_path / "dest")
    assert refused.value.message == (
        "payload.tar's member 1: the absolute name '/etc/cron.d/evil' is refused; a payload holds relative names"
    )


@pytest.mark.parametrize(
    ("kind", "what"),
    [
        (tarfile.SYMTYPE, "symbolic link"),
        (tarfile.LNKTYPE, "hard link"),
        (tarfile.CHRTYPE, "character device"),
    ],
)
def test_unpack_refuses_links_and_devices(tmp_path, key, kind, what):
    info = tarfile.TarInfo("rootfs/etc/shadow-link")
    info.type, info.linkname = kind, "/etc/shadow"
    message = unpack_refusal(tmp_path, key, [info])
    assert message == (
        f"payload.tar's member 1, 'rootfs/etc/shadow-link', is a {what}: a payload holds only files and folders"
    )


def test_unpack_refuses_a_file_twice(tmp_path, key):
    message = unpack_refusal(tmp_path, key, [("wheels/a.whl", b"1"), ("wheels/a.whl", b"2")])
    assert message == "payload.tar's member 2: 'wheels/a.whl' appears twice in payload.tar"


def test_unpack_refuses_a_payload_swapped_after_verification(make_bundle, keyring, key, tmp_path):
    path = make_bundle("0.2.0")
    manifest = verify_bundle(path, keyring)
    parts = members(path)
    payload = bytearray(parts["payload.tar"])
    payload[700] ^= 0x01
    parts["payload.tar"] = bytes(payload)
    rebuild(path, parts)
    dest = tmp_path / "dest"
    with pytest.raises(UpdateRefused, match=r"the payload's SHA-256 is .* tampered with"):
        extract_payload(path, manifest, dest)
    assert not dest.exists()


def test_unpack_refuses_an_existing_destination(make_bundle, keyring, tmp_path):
    path = make_bundle()
    manifest = verify_bundle(path, keyring)
    (tmp_path / "dest").mkdir()
    with pytest.raises(UpdateRefused, match="exists already: the payload is unpacked into a new folder"):
        extract_payload(path, manifest, tmp_path / "dest")


def test_unpack_refuses_when_the_disk_is_too_small(make_bundle, keyring, tmp_path, monkeypatch):
    path = make_bundle()
    manifest = verify_bundle(path, keyring)
    monkeypatch.setattr(
        bundle_module.shutil, "disk_usage", lambda _: shutil._ntuple_diskusage(10, 9, 1 << 20)
    )  # type: ignore[attr-defined]
    with pytest.raises(UpdateRefused) as refused:
        extract_payload(path, manifest, tmp_path / "releases" / "0.2.0")
    assert refused.value.message.startswith(
        f"too little disk space in {tmp_path}: unpacking the update needs"
    )
    assert "1 MiB are free" in refused.value.message
    assert not (tmp_path / "releases").exists()


def test_unpack_refuses_a_payload_missing_a_listed_wheel(tmp_path, key):
    payload = tar_bytes([("wheels/a-1-py3-none-any.whl", b"1")])
    manifest = manifest_for(payload, wheels=["a-1-py3-none-any.whl", "b-1-py3-none-any.whl"])
    path = raw_bundle(tmp_path / "b.bundle", manifest, payload, key)
    verified = verify_bundle(path, Keyring.from_keys([key.public_key()]))
    with pytest.raises(UpdateRefused, match=r"lacks wheels its manifest lists: b-1-py3-none-any\.whl"):
        extract_payload(path, verified, tmp_path / "dest")
    assert not (tmp_path / "dest").exists()


def test_signature_file_holds_one_signature(make_bundle, key):
    parts = members(make_bundle())
    assert parts["manifest.sig"] == canonical(sign(parts["manifest.json"], key))  # Ed25519 is deterministic
