"""Ed25519 release keys, signatures over exact bytes, and the appliance's keyring with key rotation.

The appliance trusts the keys shipped in its image (``layout.update_keyring``, read-only) and the keys
those keys endorsed since (rotation), minus the keys revoked since; both are kept in
``layout.update_state / keyring.json``. A key is named by its id, the first 16 hex digits of the SHA-256 of
its raw 32-byte public key, so a person can compare ids by eye and a statement can say which key signed
it without carrying the key.

Key statements travel inside signed bundles and channel indexes, and each one is signed on its own, so it
can be checked before the file carrying it is trusted:

- an endorsement ``{"key": {"id", "public", "comment"}, "signed_by", "signature"}``, the signature over
  ``canonical(key)``: "trust this key too";
- a revocation ``{"revoke": id, "signed_by", "signature"}``, the signature over
  ``canonical({"revoke": id})``: "never trust this key again".

Rules (the ones RAUC's keyring and TUF's root rotation agree on, with a single signature needed):

- a statement counts only when signed by a key trusted at that point of the list; statements are
  applied in order, so one list can endorse a new key and then let it revoke the old one;
- a revocation is permanent: an endorsement of a revoked key is ignored, and a revoked key signs nothing
  any more;
- revoking a key does not revoke the keys it endorsed: a key accepted before its endorser's revocation
  stays trusted (rotation would otherwise undo itself), while an endorsement signed by the revoked key
  that arrives afterwards is refused. A compromised key's endorsements are revoked by naming them;
- the keyring is never left empty: a revocation that would remove the last trusted key is refused;
- a list is applied as a whole or not at all.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ..errors import ApplianceError
from ..layout import Layout, write_atomic

#: The file, in ``layout.update_state``, of the keys accepted and revoked through rotation.
KEYRING_STATE = "keyring.json"
#: Keyring files are a few hundred bytes a key; anything much bigger is not one.
MAX_KEYRING_BYTES = 1 << 20
_KEY_ID = re.compile(r"[0-9a-f]{16}")
_KEY_FIELDS = {"id", "public", "comment"}


class UpdateRefused(ApplianceError):
    """An update (bundle, channel index, key statement) that is not used, with why and what to do."""


@dataclass(frozen=True)
class TrustedKey:
    """A public key the keyring knows: its id, the key, the comment it was published with, where from."""

    id: str
    public: Ed25519PublicKey
    comment: str = ""
    source: str = ""

    @property
    def public_b64(self) -> str:
        return base64.b64encode(public_bytes(self.public)).decode("ascii")


# Keys


def public_bytes(public_key: Ed25519PublicKey) -> bytes:
    """The raw 32 bytes of a public key."""
    return public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public_key: Ed25519PublicKey) -> str:
    """A key's name: the first 16 hex digits of the SHA-256 of its raw public key."""
    return hashlib.sha256(public_bytes(public_key)).hexdigest()[:16]


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_private_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Save a private key as PEM (PKCS#8, unencrypted), readable by its owner only, replaced atomically."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_atomic(path, pem, mode=0o600)


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """A release key saved by :func:`write_private_key`."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ApplianceError(f"no signing key at {path}") from None
    except OSError as e:
        raise ApplianceError(f"cannot read the signing key {path}: {e.strerror}") from e
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ApplianceError(
            f"{path} is protected by a passphrase; release keys are stored without"
        ) from None
    except (ValueError, UnsupportedAlgorithm) as e:
        raise ApplianceError(f"{path} is not a PEM private key: {e}") from e
    if not isinstance(key, Ed25519PrivateKey):
        raise ApplianceError(f"{path} is a {type(key).__name__.lstrip('_')}; release keys are Ed25519 keys")
    return key


def key_entry(public_key: Ed25519PublicKey, comment: str = "") -> dict[str, str]:
    """A public key as keyring files and endorsements carry it."""
    return {
        "id": key_id(public_key),
        "public": base64.b64encode(public_bytes(public_key)).decode("ascii"),
        "comment": comment,
    }


def write_keyring(path: Path, public_keys: Iterable[Ed25519PublicKey], comment: str = "") -> None:
    """Write a keyring file (what the image ships as ``update-keyring.json``)."""
    entries = [key_entry(k, comment) for k in public_keys]
    write_atomic(path, json.dumps({"keys": entries}, indent=2) + "\n")


# Signatures


def canonical(obj: Any) -> bytes:
    """The one byte form of a JSON value that is signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sign(data: bytes, key: Ed25519PrivateKey) -> dict[str, str]:
    """A signature of ``data``: ``{"key_id", "signature"}`` (base64)."""
    return {"key_id": key_id(key.public_key()), "signature": _b64(key.sign(data))}


def endorse(
    public_key: Ed25519PublicKey, signing_key: Ed25519PrivateKey, comment: str = ""
) -> dict[str, Any]:
    """A statement, signed by ``signing_key``, that ``public_key`` is to be trusted too."""
    entry = key_entry(public_key, comment)
    return {
        "key": entry,
        "signed_by": key_id(signing_key.public_key()),
        "signature": _b64(signing_key.sign(canonical(entry))),
    }


def revoke(revoked_id: str, signing_key: Ed25519PrivateKey) -> dict[str, Any]:
    """A statement, signed by ``signing_key``, that key ``revoked_id`` is never to be trusted again."""
    return {
        "revoke": revoked_id,
        "signed_by": key_id(signing_key.public_key()),
        "signature": _b64(signing_key.sign(canonical({"revoke": revoked_id}))),
    }


def parse_key(entry: Any, where: str) -> TrustedKey:
    """A ``{"id", "public", "comment"}`` entry, refused when malformed or when its id is not its key's."""
    if not isinstance(entry, dict):
        raise UpdateRefused(f"{where}: a key must be an object with id, public and comment")
    if set(entry) != _KEY_FIELDS:
        raise UpdateRefused(
            f"{where}: a key has exactly the fields id, public and comment, not {sorted(entry)}"
        )
    kid, public, comment = entry["id"], entry["public"], entry["comment"]
    if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
        raise UpdateRefused(f"{where}: a key id is 16 lowercase hex digits, not {kid!r}")
    if not isinstance(comment, str):
        raise UpdateRefused(f"{where}: the comment of key {kid} must be text")
    raw = _unb64(public, 32, f"{where}: the public key of key {kid}")
    key = Ed25519PublicKey.from_public_bytes(raw)
    if key_id(key) != kid:
        raise UpdateRefused(
            f"{where}: key id {kid} does not match its public key, whose id is {key_id(key)}: "
            "the entry was edited or put together by hand"
        )
    return TrustedKey(kid, key, comment)


def parse_signature(signature: Any, what: str) -> tuple[str, bytes]:
    """The key id and raw bytes of a ``{"key_id", "signature"}`` object."""
    if not isinstance(signature, dict) or set(signature) != {"key_id", "signature"}:
        raise UpdateRefused(
            f"the {what}'s signature is malformed: expected an object with key_id and signature"
        )
    kid = signature["key_id"]
    if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
        raise UpdateRefused(f"the {what}'s signature names no valid key id ({kid!r})")
    return kid, _unb64(signature["signature"], 64, f"the {what}'s signature by key {kid}")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, length: int, what: str) -> bytes:
    try:
        if not isinstance(value, str):
            raise ValueError
        raw = base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise UpdateRefused(f"{what} is not base64") from None
    if len(raw) != length:
        raise UpdateRefused(f"{what} is {len(raw)} bytes long instead of {length}")
    return raw


# The keyring


class Keyring:
    """The keys this appliance trusts: shipped in the image, plus endorsed, minus revoked.

    :meth:`load` reads the appliance's; :meth:`from_keys` makes one in memory (release tools, tests).
    :meth:`accept` applies key statements and saves the result; :meth:`preview` applies them to a copy,
    to check a file whose own statements must be taken into account before it is trusted.
    """

    def __init__(
        self,
        shipped: Iterable[TrustedKey],
        *,
        accepted: Iterable[dict[str, Any]] = (),
        revoked: Iterable[dict[str, Any]] = (),
        state_file: Path | None = None,
    ) -> None:
        self._shipped = {k.id: k for k in shipped}
        self._accepted: dict[str, tuple[TrustedKey, dict[str, Any]]] = {}
        for record in accepted:
            key = parse_key(record.get("key"), f"{state_file}")
            signer, when = record.get("signed_by"), record.get("accepted")
            self._accepted[key.id] = (
                TrustedKey(key.id, key.public, key.comment, f"endorsed by key {signer} on {when}"),
                record,
            )
        self._revoked: dict[str, dict[str, Any]] = {str(r.get("revoke")): r for r in revoked}
        self.state_file = state_file

    @classmethod
    def load(cls, layout: Layout) -> Keyring:
        """The appliance's keyring: ``layout.update_keyring`` and the rotation state beside the updater's."""
        path = layout.update_keyring
        shipped = [
            TrustedKey(k.id, k.public, k.comment, f"shipped in {path}")
            for k in read_keyring_file(path, "the image's update keyring")
        ]
        if not shipped:
            raise UpdateRefused(
                f"the image's update keyring {path} lists no key, so no update can be verified"
            )
        state_file = layout.update_state / KEYRING_STATE
        state = _read_json(state_file, "the updater's keyring state", missing={})
        accepted, revoked = state.get("accepted", []), state.get("revoked", [])
        if not (isinstance(accepted, list) and isinstance(revoked, list)):
            raise UpdateRefused(f"{state_file} is damaged: accepted and revoked must be lists")
        if not all(isinstance(r, dict) for r in [*accepted, *revoked]):
            raise UpdateRefused(f"{state_file} is damaged: each accepted or revoked key must be an object")
        return cls(shipped, accepted=accepted, revoked=revoked, state_file=state_file)

    @classmethod
    def from_keys(cls, public_keys: Iterable[Ed25519PublicKey], source: str = "given") -> Keyring:
        """An in-memory keyring trusting ``public_keys`` (nothing is saved)."""
        return cls(TrustedKey(key_id(k), k, "", source) for k in public_keys)

    # What is trusted

    @property
    def trusted(self) -> dict[str, TrustedKey]:
        """The keys trusted now, by id."""
        keys = {**self._shipped, **{kid: key for kid, (key, _) in self._accepted.items()}}
        return {kid: key for kid, key in keys.items() if kid not in self._revoked}

    @property
    def ids(self) -> list[str]:
        return sorted(self.trusted)

    @property
    def revoked(self) -> dict[str, str]:
        """The revoked key ids, with which key revoked each."""
        return {kid: str(r.get("signed_by")) for kid, r in self._revoked.items()}

    def verify(self, data: bytes, signature: Any, what: str = "file") -> str:
        """The id of the trusted key whose ``signature`` (``{"key_id", "signature"}``) ``data`` carries."""
        kid, raw = parse_signature(signature, what)
        key = self.trusted.get(kid)
        if key is None:
            raise self._untrusted(kid, f"the {what} is signed with key {kid}", what)
        try:
            key.public.verify(raw, data)
        except InvalidSignature:
            raise UpdateRefused(
                f"the {what}'s signature does not verify with key {kid}: the file was changed after "
                "signing, or it was not signed by this key"
            ) from None
        return kid

    def verify_any(self, data: bytes, signatures: Any, what: str = "file") -> str:
        """The id of a trusted key among several signatures (one valid signature by a trusted key is enough)."""
        if not isinstance(signatures, list) or not signatures:
            raise UpdateRefused(f"the {what} carries no signature")
        refusals: list[UpdateRefused] = []
        for signature in signatures:
            try:
                return self.verify(data, signature, what)
            except UpdateRefused as e:
                refusals.append(e)
        # A bad signature by a trusted key says more than an unknown key does.
        bad = [e for e in refusals if "does not verify" in e.message]
        raise (bad or refusals)[0]

    def _untrusted(self, kid: str, subject: str, what: str) -> UpdateRefused:
        if kid in self._revoked:
            return UpdateRefused(
                f"{subject}, which was revoked (by key {self.revoked[kid]}): get a {what} signed with a "
                "current release key"
            )
        return UpdateRefused(
            f"{subject}, an unknown key: this appliance trusts only {', '.join(self.ids)}. It was signed by "
            "someone else, or by a new release key that no trusted key has endorsed yet"
        )

    # Rotation

    def preview(self, statements: Any) -> Keyring:
        """A copy of this keyring with ``statements`` applied, nothing saved."""
        candidate = self._copy()
        candidate._apply(statements)
        return candidate

    def accept(self, statements: Any) -> list[str]:
        """Apply key statements (endorsements and revocations, in order) and save; what changed, in words.

        Statements already applied change nothing, so a channel can carry its whole key history.
        """
        candidate = self._copy()
        changes = candidate._apply(statements)
        if changes and self.state_file is not None:
            state = {
                "format": 1,
                "accepted": [record for _, record in candidate._accepted.values()],
                "revoked": list(candidate._revoked.values()),
            }
            write_atomic(self.state_file, json.dumps(state, indent=2) + "\n", mode=0o600)
        self._accepted, self._revoked = candidate._accepted, candidate._revoked
        return changes

    def _copy(self) -> Keyring:
        other = Keyring(self._shipped.values())
        other._accepted = dict(self._accepted)
        other._revoked = dict(self._revoked)
        return other

    def _apply(self, statements: Any) -> list[str]:
        if not isinstance(statements, (list, tuple)):
            raise UpdateRefused("key statements must be a list of endorsements and revocations")
        changes: list[str] = []
        now = datetime.now(UTC).isoformat(timespec="seconds")
        for number, statement in enumerate(statements, 1):
            where = f"key statement {number}"
            if not isinstance(statement, dict):
                raise UpdateRefused(f"{where} is not an object")
            if set(statement) == {"key", "signed_by", "signature"}:
                change = self._endorsement(statement, where, now)
            elif set(statement) == {"revoke", "signed_by", "signature"}:
                change = self._revocation(statement, where, now)
            else:
                raise UpdateRefused(
                    f"{where} is neither an endorsement (key, signed_by, signature) nor a revocation "
                    f"(revoke, signed_by, signature): it has {sorted(statement)}"
                )
            if change:
                changes.append(change)
        return changes

    def _signer(self, statement: dict[str, Any], where: str, subject: str) -> Ed25519PublicKey:
        signer = statement["signed_by"]
        if not isinstance(signer, str) or not _KEY_ID.fullmatch(signer):
            raise UpdateRefused(f"{where}: signed_by is not a key id ({signer!r})")
        key = self.trusted.get(signer)
        if key is None:
            raise self._untrusted(signer, f"{where}: {subject} is signed by key {signer}", "statement")
        return key.public

    def _endorsement(self, statement: dict[str, Any], where: str, now: str) -> str | None:
        new = parse_key(statement["key"], where)
        if new.id in self._revoked:
            return None  # revoked for good; the endorsement is part of an old history
        known = self.trusted.get(new.id)
        if known is not None:
            if public_bytes(known.public) != public_bytes(new.public):
                raise UpdateRefused(f"{where}: key {new.id} is already trusted with another public key")
            return None
        signer = self._signer(statement, where, f"the endorsement of key {new.id}")
        raw = _unb64(statement["signature"], 64, f"{where}: the signature")
        try:
            signer.verify(raw, canonical(statement["key"]))
        except InvalidSignature:
            raise UpdateRefused(
                f"{where}: the endorsement of key {new.id} does not verify with key "
                f"{statement['signed_by']}: it was forged, or changed after signing"
            ) from None
        record = {**copy.deepcopy(statement), "accepted": now}
        source = f"endorsed by key {statement['signed_by']} on {now}"
        self._accepted[new.id] = (TrustedKey(new.id, new.public, new.comment, source), record)
        comment = f" ({new.comment})" if new.comment else ""
        return f"accepted key {new.id}{comment}, endorsed by key {statement['signed_by']}"

    def _revocation(self, statement: dict[str, Any], where: str, now: str) -> str | None:
        kid = statement["revoke"]
        if not isinstance(kid, str) or not _KEY_ID.fullmatch(kid):
            raise UpdateRefused(f"{where}: a revocation names a key id, 16 lowercase hex digits, not {kid!r}")
        if kid in self._revoked:
            return None
        signer = self._signer(statement, where, f"the revocation of key {kid}")
        raw = _unb64(statement["signature"], 64, f"{where}: the signature")
        try:
            signer.verify(raw, canonical({"revoke": kid}))
        except InvalidSignature:
            raise UpdateRefused(
                f"{where}: the revocation of key {kid} does not verify with key {statement['signed_by']}: "
                "it was forged, or changed after signing"
            ) from None
        if set(self.trusted) <= {kid}:
            raise UpdateRefused(
                f"{where}: revoking key {kid} would leave no trusted key, and no update could ever be "
                "verified again; endorse its successor first"
            )
        known = "" if kid in self.trusted else " (not trusted here before)"
        self._revoked[kid] = {**copy.deepcopy(statement), "accepted": now}
        return f"revoked key {kid}{known}, by key {statement['signed_by']}"


def read_keyring_file(path: Path, what: str = "keyring") -> list[TrustedKey]:
    """The keys of a keyring file ``{"keys": [{"id", "public", "comment"}]}``."""
    data = _read_json(path, what)
    keys = data.get("keys")
    if not isinstance(keys, list):
        raise UpdateRefused(f"{what} {path} is not a keyring: it needs a list of keys")
    return [parse_key(entry, f"{path}, key {number}") for number, entry in enumerate(keys, 1)]


def _read_json(path: Path, what: str, missing: dict[str, Any] | None = None) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_KEYRING_BYTES + 1)
    except FileNotFoundError:
        if missing is not None:
            return missing
        raise UpdateRefused(f"{what} {path} is missing, so no update can be verified") from None
    except OSError as e:
        raise UpdateRefused(f"cannot read {what} {path}: {e.strerror}") from e
    if len(raw) > MAX_KEYRING_BYTES:
        raise UpdateRefused(f"{what} {path} is larger than {MAX_KEYRING_BYTES} bytes: it is not a keyring")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise UpdateRefused(f"{what} {path} is damaged (not JSON: {e})") from e
    if not isinstance(data, dict):
        raise UpdateRefused(f"{what} {path} is damaged (not a JSON object)")
    return data
