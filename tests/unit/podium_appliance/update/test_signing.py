"""Release keys, signatures and the keyring: what is trusted, rotation, revocation, and their refusals."""

from __future__ import annotations

import hashlib
import json
import stat

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from podium_appliance.errors import ApplianceError
from podium_appliance.update.signing import (
    KEYRING_STATE,
    Keyring,
    UpdateRefused,
    canonical,
    endorse,
    generate_private_key,
    key_entry,
    key_id,
    load_private_key,
    public_bytes,
    revoke,
    sign,
    write_keyring,
    write_private_key,
)


def test_key_id_is_sha256_of_the_raw_public_key(key):
    assert key_id(key.public_key()) == hashlib.sha256(public_bytes(key.public_key())).hexdigest()[:16]
    assert len(public_bytes(key.public_key())) == 32


def test_private_key_is_saved_owner_only_and_loads_back(tmp_path, key):
    path = tmp_path / "keys" / "release.key"
    write_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert key_id(load_private_key(path).public_key()) == key_id(key.public_key())


def test_load_private_key_refuses_what_is_not_an_ed25519_key(tmp_path):
    with pytest.raises(ApplianceError, match="no signing key at"):
        load_private_key(tmp_path / "missing.key")
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(ApplianceError, match="is not a PEM private key"):
        load_private_key(tmp_path / "junk.key")
    ecdsa = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    (tmp_path / "ec.key").write_bytes(ecdsa)
    with pytest.raises(ApplianceError, match="release keys are Ed25519 keys"):
        load_private_key(tmp_path / "ec.key")


def test_canonical_is_sorted_compact_utf8():
    assert canonical({"b": 1, "a": ["é", None]}) == '{"a":["é",null],"b":1}'.encode()


def test_verify_returns_the_signer(keyring, key):
    assert keyring.verify(b"data", sign(b"data", key)) == key_id(key.public_key())


def test_verify_refuses_a_changed_file(keyring, key):
    signature = sign(b"data", key)
    with pytest.raises(UpdateRefused) as refused:
        keyring.verify(b"data!", signature, "bundle's manifest")
    kid = key_id(key.public_key())
    assert refused.value.message == (
        f"the bundle's manifest's signature does not verify with key {kid}: the file was changed after "
        "signing, or it was not signed by this key"
    )


def test_verify_refuses_an_unknown_key_naming_it_and_the_trusted_ones(keyring, key):
    stranger = generate_private_key()
    with pytest.raises(UpdateRefused) as refused:
        keyring.verify(b"data", sign(b"data", stranger), "bundle's manifest")
    message = refused.value.message
    assert f"signed with key {key_id(stranger.public_key())}, an unknown key" in message
    assert f"this appliance trusts only {key_id(key.public_key())}" in message


def test_verify_refuses_a_malformed_signature(keyring):
    with pytest.raises(UpdateRefused, match="signature is malformed"):
        keyring.verify(b"data", {"signature": "AAAA"})
    with pytest.raises(UpdateRefused, match="is not base64"):
        keyring.verify(b"data", {"key_id": "0" * 16, "signature": "!!"})
    with pytest.raises(UpdateRefused, match="is 3 bytes long instead of 64"):
        keyring.verify(b"data", {"key_id": "0" * 16, "signature": "AAAA"})


def test_keyring_load_reads_the_image_keyring(layout, key):
    keyring = Keyring.load(layout)
    assert keyring.ids == [key_id(key.public_key())]
    (trusted,) = keyring.trusted.values()
    assert trusted.comment == "image key" and "shipped in" in trusted.source


def test_keyring_load_refuses_a_missing_empty_or_forged_image_keyring(layout, key):
    layout.update_keyring.unlink()
    with pytest.raises(UpdateRefused, match=r"update keyring .* is missing, so no update can be verified"):
        Keyring.load(layout)
    write_keyring(layout.update_keyring, [])
    with pytest.raises(UpdateRefused, match="lists no key"):
        Keyring.load(layout)
    entry = key_entry(key.public_key())
    entry["id"] = "0123456789abcdef"
    layout.update_keyring.write_text(json.dumps({"keys": [entry]}))
    with pytest.raises(UpdateRefused, match="key id 0123456789abcdef does not match its public key"):
        Keyring.load(layout)
    layout.update_keyring.write_text("{")
    with pytest.raises(UpdateRefused, match="is damaged"):
        Keyring.load(layout)


# Rotation


def test_rotation_endorsed_key_is_accepted_saved_and_verifies(layout, key):
    new = generate_private_key()
    new_id = key_id(new.public_key())
    keyring = Keyring.load(layout)
    changes = keyring.accept([endorse(new.public_key(), key, "release key 2027")])
    assert changes == [
        f"accepted key {new_id} (release key 2027), endorsed by key {key_id(key.public_key())}"
    ]
    assert keyring.verify(b"data", sign(b"data", new)) == new_id
    state = layout.update_state / KEYRING_STATE
    assert stat.S_IMODE(state.stat().st_mode) == 0o600
    again = Keyring.load(layout)  # saved: a restarted updater trusts it too
    assert again.verify(b"data", sign(b"data", new)) == new_id
    assert "endorsed by key" in again.trusted[new_id].source
    assert again.accept([endorse(new.public_key(), key)]) == []  # a replayed statement changes nothing


def test_rotation_refuses_a_forged_endorsement(layout, key):
    attacker, new = generate_private_key(), generate_private_key()
    statement = endorse(attacker.public_key(), key)
    statement["key"] = key_entry(new.public_key())  # the signature was over another key
    keyring = Keyring.load(layout)
    with pytest.raises(UpdateRefused) as refused:
        keyring.accept([statement])
    assert refused.value.message == (
        f"key statement 1: the endorsement of key {key_id(new.public_key())} does not verify with key "
        f"{key_id(key.public_key())}: it was forged, or changed after signing"
    )
    assert key_id(new.public_key()) not in keyring.trusted
    assert not (layout.update_state / KEYRING_STATE).exists()


def test_rotation_refuses_an_endorsement_by_an_unknown_key(layout):
    stranger, new = generate_private_key(), generate_private_key()
    with pytest.raises(UpdateRefused) as refused:
        Keyring.load(layout).accept([endorse(new.public_key(), stranger)])
    assert refused.value.message.startswith(
        f"key statement 1: the endorsement of key {key_id(new.public_key())} is signed by key "
        f"{key_id(stranger.public_key())}, an unknown key: this appliance trusts only"
    )


def test_rotation_refuses_an_id_that_is_not_its_public_key(layout, key):
    new, other = generate_private_key(), generate_private_key()
    entry = key_entry(new.public_key())
    entry["id"] = key_id(other.public_key())
    statement = {"key": entry, "signed_by": key_id(key.public_key()), "signature": ""}
    statement["signature"] = sign(canonical(entry), key)["signature"]  # signed, yet inconsistent
    with pytest.raises(UpdateRefused, match=f"key id {entry['id']} does not match its public key"):
        Keyring.load(layout).accept([statement])


def test_rotation_a_list_is_applied_whole_or_not_at_all(layout, key):
    good, forged = generate_private_key(), generate_private_key()
    bad = endorse(forged.public_key(), key)
    bad["signature"] = endorse(good.public_key(), key)["signature"]
    keyring = Keyring.load(layout)
    with pytest.raises(UpdateRefused, match="key statement 2"):
        keyring.accept([endorse(good.public_key(), key), bad])
    assert keyring.ids == [key_id(key.public_key())]
    assert Keyring.load(layout).ids == [key_id(key.public_key())]


def test_rotation_new_key_revokes_the_old_one(layout, key):
    new = generate_private_key()
    old_id, new_id = key_id(key.public_key()), key_id(new.public_key())
    keyring = Keyring.load(layout)
    changes = keyring.accept([endorse(new.public_key(), key), revoke(old_id, new)])
    assert changes[1] == f"revoked key {old_id}, by key {new_id}"
    assert Keyring.load(layout).ids == [new_id]
    with pytest.raises(UpdateRefused) as refused:
        Keyring.load(layout).verify(b"data", sign(b"data", key), "bundle's manifest")
    assert refused.value.message == (
        f"the bundle's manifest is signed with key {old_id}, which was revoked (by key {new_id}): get a "
        "bundle's manifest signed with a current release key"
    )


def test_rotation_keys_endorsed_before_a_revocation_stay_trusted_later_ones_are_refused(layout, key):
    second, third, late = generate_private_key(), generate_private_key(), generate_private_key()
    keyring = Keyring.load(layout)
    keyring.accept([endorse(second.public_key(), key), endorse(third.public_key(), second)])
    keyring.accept([revoke(key_id(second.public_key()), key)])
    assert key_id(third.public_key()) in keyring.trusted  # accepted before its endorser's revocation
    with pytest.raises(
        UpdateRefused, match=f"is signed by key {key_id(second.public_key())}, which was revoked"
    ):
        keyring.accept([endorse(late.public_key(), second)])


def test_rotation_a_revoked_key_stays_revoked(layout, key):
    new = generate_private_key()
    keyring = Keyring.load(layout)
    history = [endorse(new.public_key(), key), revoke(key_id(new.public_key()), key)]
    keyring.accept(history)
    assert keyring.accept(history) == []  # the endorsement of a revoked key is old history, ignored
    assert key_id(new.public_key()) not in Keyring.load(layout).trusted


def test_rotation_never_leaves_the_keyring_empty(layout, key):
    kid = key_id(key.public_key())
    with pytest.raises(UpdateRefused) as refused:
        Keyring.load(layout).accept([revoke(kid, key)])
    assert refused.value.message == (
        f"key statement 1: revoking key {kid} would leave no trusted key, and no update could ever be verified "
        "again; endorse its successor first"
    )
    new = generate_private_key()
    keyring = Keyring.load(layout)
    keyring.accept([endorse(new.public_key(), key), revoke(kid, key)])  # a key may retire itself
    assert keyring.ids == [key_id(new.public_key())]


def test_rotation_refuses_a_forged_revocation(layout, key):
    other, stranger = generate_private_key(), generate_private_key()
    keyring = Keyring.load(layout)
    keyring.accept([endorse(other.public_key(), key)])
    forged = revoke(key_id(key.public_key()), other)
    forged["revoke"] = key_id(other.public_key())
    with pytest.raises(UpdateRefused, match=r"the revocation of key .* does not verify with key"):
        keyring.accept([forged])
    with pytest.raises(UpdateRefused, match="an unknown key"):
        keyring.accept([revoke(key_id(key.public_key()), stranger)])


def test_rotation_refuses_what_is_not_a_statement(layout):
    keyring = Keyring.load(layout)
    with pytest.raises(UpdateRefused, match="must be a list"):
        keyring.accept({"revoke": "x"})
    with pytest.raises(UpdateRefused, match=r"neither an endorsement .* nor a revocation"):
        keyring.accept([{"key": {}, "revoke": "0" * 16}])


def test_preview_changes_nothing(layout, key):
    new = generate_private_key()
    keyring = Keyring.load(layout)
    preview = keyring.preview([endorse(new.public_key(), key)])
    assert key_id(new.public_key()) in preview.trusted
    assert key_id(new.public_key()) not in keyring.trusted
    assert not (layout.update_state / KEYRING_STATE).exists()


def test_verify_any_accepts_one_trusted_signature_among_several(keyring, key):
    stranger = generate_private_key()
    signatures = [sign(b"data", stranger), sign(b"data", key)]
    assert keyring.verify_any(b"data", signatures, "channel index") == key_id(key.public_key())
    with pytest.raises(UpdateRefused, match="carries no signature"):
        keyring.verify_any(b"data", [], "channel index")
    with pytest.raises(UpdateRefused, match="does not verify"):
        keyring.verify_any(b"other", signatures, "channel index")
