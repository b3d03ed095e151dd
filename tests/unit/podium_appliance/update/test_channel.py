"""Channel indexes: signed, verified, and refused when forged, mixed up, replayed or frozen."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta

import pytest

from podium_appliance.update.channel import Index, Release, make_signed, sign_index, verify_index
from podium_appliance.update.signing import (
    Keyring,
    UpdateRefused,
    canonical,
    endorse,
    generate_private_key,
    key_id,
    revoke,
    sign,
)

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def release(version: str, min_version: str = "0.1.0") -> Release:
    return Release(version, min_version, f"podium-{version}.bundle", "a" * 64, 1000, f"notes of {version}")


def signed(channel: str = "stable", serial: int = 10, days: float = 30, **more: object) -> dict[str, object]:
    releases = [release("0.2.0"), release("0.3.0", "0.2.0"), release("0.1.1")]
    return {**make_signed(channel, serial, NOW + timedelta(days=days), releases), **more}


def refusal(data: bytes, keyring: Keyring, **kwargs: object) -> str:
    arguments = {"channel": "stable", "last_serial": 5, "now": NOW, **kwargs}
    with pytest.raises(UpdateRefused) as refused:
        verify_index(data, keyring, **arguments)  # type: ignore[arg-type]
    return refused.value.message


def test_index_round_trip(key, keyring):
    data = sign_index(signed(), key)
    index = verify_index(data, keyring, channel="stable", last_serial=5, now=NOW)
    assert index.channel == "stable" and index.serial == 10 and index.signed_by == key_id(key.public_key())
    assert index.expires == NOW + timedelta(days=30)
    assert [r.version for r in index.releases] == ["0.3.0", "0.2.0", "0.1.1"]  # newest first
    assert index.releases[0] == release("0.3.0", "0.2.0")
    document = json.loads(data)
    assert set(document) == {"signed", "signatures"}
    assert document["signatures"][0]["key_id"] == key_id(key.public_key())


def test_equal_serial_is_accepted_and_now_may_be_unix_time(key, keyring):
    index = verify_index(
        sign_index(signed(serial=10), key), keyring, channel="stable", last_serial=10, now=NOW.timestamp()
    )
    assert index.serial == 10
    assert verify_index(sign_index(signed(serial=0), key), keyring, channel="stable", now=NOW).serial == 0


def test_newest_is_the_newest_that_upgrades_from_the_installed_version():
    index = Index("stable", 1, NOW, (release("0.3.0", "0.2.0"), release("0.2.0"), release("0.1.1")))
    assert index.newest("0.1.0").version == "0.2.0"  # 0.3.0 needs 0.2.0 first: a stepping stone
    assert index.newest("0.2.0").version == "0.3.0"
    assert index.newest("0.3.0") is None
    assert index.newest("0.2.0", skip={"0.3.0"}) is None  # marked bad here
    assert index.newest("0.1.0", skip={"0.2"}).version == "0.1.1"  # compared as versions
    assert index.newest("0") is None  # below every release's min_version
    assert index.newest(None).version == "0.3.0"  # nothing installed: any release goes
    assert index.release("0.2") == release("0.2.0")
    assert index.release("9.9") is None


def test_refuses_malformed_json(key, keyring):
    data = sign_index(signed(), key)
    message = refusal(data[: len(data) // 2], keyring)
    assert message.startswith("the channel index is not valid JSON (")
    assert message.endswith("): the download was cut or damaged")
    assert refusal(b'{"signed": NaN}', keyring).startswith("the channel index is not valid JSON")
    assert refusal(b"[]", keyring) == "this is not a channel index: it has no signed part"


def test_refuses_an_unsigned_index(key, keyring):
    document = json.loads(sign_index(signed(), key))
    document["signatures"] = []
    assert refusal(json.dumps(document).encode(), keyring) == "the channel index carries no signature"


def test_refuses_a_changed_index(key, keyring):
    document = json.loads(sign_index(signed(), key))
    document["signed"]["releases"][0]["sha256"] = "b" * 64
    assert refusal(json.dumps(document).encode(), keyring) == (
        f"the channel index's signature does not verify with key {key_id(key.public_key())}: the file was "
        "changed after signing, or it was not signed by this key"
    )


def test_refuses_an_index_signed_with_an_unknown_key(key, keyring):
    stranger = generate_private_key()
    message = refusal(sign_index(signed(), stranger), keyring)
    assert message.startswith(
        f"the channel index is signed with key {key_id(stranger.public_key())}, an unknown key: this appliance "
        f"trusts only {key_id(key.public_key())}."
    )


def test_one_trusted_signature_among_several_is_enough(key, keyring):
    stranger = generate_private_key()
    index = verify_index(sign_index(signed(), [stranger, key]), keyring, channel="stable", now=NOW)
    assert index.signed_by == key_id(key.public_key())


def test_refuses_another_channel(key, keyring):
    assert refusal(sign_index(signed("latest"), key), keyring) == (
        "the channel index is for the 'latest' channel, not 'stable': the update server serves another "
        "channel's index in its place (a mix-up on the server, or an attack)"
    )


def test_refuses_an_expired_index(key, keyring):
    data = sign_index(signed(days=-1), key)
    assert refusal(data, keyring) == (
        "the stable channel index expired at 2026-05-31 12:00 UTC (it is now 2026-06-01 12:00 UTC): the update "
        "server no longer refreshes it, or someone is serving an old copy to hide newer releases (a freeze "
        "attack); try again later, or tell the update server's operator"
    )


def test_refuses_an_older_serial(key, keyring):
    assert refusal(sign_index(signed(serial=4), key), keyring, last_serial=5) == (
        "the stable channel index has serial 4, older than serial 5 seen before: someone may be replaying an "
        "old index to hold back updates (a rollback attack), or the update server was restored from an old "
        "copy; nothing is installed from it"
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": 2}, "the channel index is in format 2, and this updater reads format 1 only"),
        ({"serial": "11"}, "serial must be a whole number"),
        ({"expires": "next week"}, "expires 'next week' is not an ISO 8601 UTC time"),
        ({"releases": {}}, "releases must be a list"),
        ({"keys": "none"}, "keys must be a list of key statements"),
    ],
)
def test_refuses_malformed_fields(key, keyring, change, message):
    document = json.loads(sign_index(signed(), key))
    document["signed"].update(change)
    document["signatures"] = [sign(canonical(document["signed"]), key)]  # signed as is: the field is refused
    assert message in refusal(json.dumps(document).encode(), keyring)


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"file": "https://evil.example/podium.bundle"}, "must be a URL relative to the index"),
        ({"file": "../other/podium.bundle"}, "must be a URL relative to the index"),
        ({"file": "/podium.bundle"}, "must be a URL relative to the index"),
        ({"version": "new"}, "version 'new' is not a version number"),
        ({"sha256": "A" * 64}, "sha256 must be 64 lowercase hex digits"),
        ({"size": -1}, "size must be a number of bytes"),
    ],
)
def test_sign_index_refuses_bad_releases(key, entry, message):
    document = signed()
    document["releases"][0].update(entry)  # type: ignore[index]
    with pytest.raises(UpdateRefused, match=message):
        sign_index(document, key)


def test_refuses_a_release_listed_twice(key):
    document = make_signed("stable", 1, NOW, [release("0.2.0"), release("0.2")])
    with pytest.raises(UpdateRefused, match=r"lists release 0\.2 twice"):
        sign_index(document, key)


def test_rotation_through_the_index(layout, key):
    """The index signed by a new key, which the old key endorses in the index itself, then revokes."""
    new = generate_private_key()
    statements = [endorse(new.public_key(), key, "2027 key"), revoke(key_id(key.public_key()), new)]
    data = sign_index(signed(keys=statements), new)
    keyring = Keyring.load(layout)
    index = verify_index(data, keyring, channel="stable", now=NOW)
    assert index.signed_by == key_id(new.public_key())
    assert key_id(key.public_key()) in keyring.ids  # verify_index saves nothing
    assert len(keyring.accept(index.keys)) == 2
    assert Keyring.load(layout).ids == [key_id(new.public_key())]
    # the same index again changes nothing; an index by the old key is now refused
    assert (
        Keyring.load(layout).accept(verify_index(data, Keyring.load(layout), channel="stable", now=NOW).keys)
        == []
    )
    assert "which was revoked" in refusal(sign_index(signed(), key), Keyring.load(layout))


def test_a_forged_endorsement_in_the_index_is_refused(key, keyring):
    attacker = generate_private_key()
    data = sign_index(signed(keys=[endorse(attacker.public_key(), attacker)]), attacker)
    assert "key statement 1: the endorsement of key" in refusal(data, keyring)


def test_release_check_file(tmp_path):
    bundle = tmp_path / "podium-0.2.0.bundle"
    bundle.write_bytes(b"bundle bytes")
    good = Release("0.2.0", "0.1.0", bundle.name, hashlib.sha256(b"bundle bytes").hexdigest(), 12)
    good.check_file(bundle)
    bad = Release("0.2.0", "0.1.0", bundle.name, "0" * 64, 12)
    with pytest.raises(UpdateRefused, match="is not the bundle the signed channel index describes"):
        bad.check_file(bundle)
    assert good.url("https://updates.example/podium/stable/index.json") == (
        "https://updates.example/podium/stable/podium-0.2.0.bundle"
    )
