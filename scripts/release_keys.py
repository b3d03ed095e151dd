"""Release keys and their rotation: new keys, endorsements and revocations for update bundles and channels.

    python scripts/release_keys.py new KEY [--comment TEXT]
    python scripts/release_keys.py endorse STATEMENTS --by SIGNER.key NEW [--comment TEXT] [--keyring FILE]
    python scripts/release_keys.py revoke STATEMENTS --by SIGNER.key KEY_ID [--keyring FILE]
    python scripts/release_keys.py show STATEMENTS [--keyring FILE]

``new`` makes an Ed25519 release key (PEM, mode 0600; an existing file is never replaced) and its public
keyring beside it (``<KEY stem>.keyring.json``), the file an image ships as its update keyring.

A rotation is a file of key statements, a JSON list kept for good and passed to ``make_bundle.py`` and
``make_channel.py`` as ``--key-statements``: ``endorse`` adds the statement, signed by a trusted key, that
NEW (a private key file, or a keyring file: each of its keys) is to be trusted too; ``revoke`` adds the
statement that a key is never to be trusted again. Each edit checks the whole list the way an appliance
shipped with ``--keyring`` (default ``build/keys/keyring.json``, the image's) would read it, and the file is
changed only when it all verifies; ``show`` prints what such an appliance would trust after reading it.
The usual order: ``new`` the successor, ``endorse`` it by the current key, release bundles signed by the
current key that carry the statements, switch ``--key`` to the successor, and later ``revoke`` the old key.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "appliance"))

from podium_appliance.errors import ApplianceError  # noqa: E402
from podium_appliance.layout import write_atomic  # noqa: E402
from podium_appliance.update.signing import (  # noqa: E402
    Keyring,
    endorse,
    generate_private_key,
    key_id,
    load_private_key,
    read_keyring_file,
    revoke,
    write_keyring,
    write_private_key,
)

DEFAULT_KEYRING = ROOT / "build" / "keys" / "keyring.json"


def fail(message: str) -> NoReturn:
    print(f"release_keys: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def read_statements(path: Path) -> list[object]:
    """The statements file's list (each statement is checked by the keyring that reads it); an absent file is
    an empty history."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as e:
        fail(f"cannot read the key statements {path}: {e}")
    if not isinstance(data, list):
        fail(f"{path} is not a list of key statements")
    return data


def appliance_reading(keyring: Path, statements: list[object]) -> tuple[Keyring, list[str]]:
    """What an appliance shipped with ``keyring`` makes of ``statements``: its keyring after, and the changes."""
    trusting = Keyring(read_keyring_file(keyring, "the image's keyring"))
    return trusting, trusting.accept(statements)


def new_keys(source: Path) -> list[Ed25519PublicKey]:
    """The public keys of a private key file or of a keyring file."""
    if source.suffix == ".json":
        return [k.public for k in read_keyring_file(source)]
    return [load_private_key(source).public_key()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    actions = parser.add_subparsers(dest="action", required=True)
    new = actions.add_parser("new", help="make a release key and its public keyring")
    new.add_argument("key", type=Path)
    new.add_argument("--comment", default="", help="said with the key in keyrings (who, what for)")
    for name, what in (("endorse", "trust a new key"), ("revoke", "never trust a key again")):
        edit = actions.add_parser(name, help=f"add a statement to {what}")
        edit.add_argument("statements", type=Path, help="the JSON list of key statements (made if absent)")
        edit.add_argument("--by", type=Path, required=True, help="the private key that signs the statement")
        edit.add_argument("--keyring", type=Path, default=DEFAULT_KEYRING, help="the image's keyring")
        if name == "endorse":
            edit.add_argument("new", type=Path, help="the key to trust: a private key or a keyring file")
            edit.add_argument("--comment", default="", help="said with the key in keyrings")
        else:
            edit.add_argument("key_id", help="the id of the key to revoke (16 hex digits)")
    show = actions.add_parser("show", help="what an appliance would trust after reading the statements")
    show.add_argument("statements", type=Path)
    show.add_argument("--keyring", type=Path, default=DEFAULT_KEYRING, help="the image's keyring")
    args = parser.parse_args(argv)

    try:
        if args.action == "new":
            for path in (args.key, args.key.with_name(f"{args.key.stem}.keyring.json")):
                if path.exists():
                    fail(f"{path} exists: a release key is never replaced")
            key = generate_private_key()
            write_private_key(args.key, key)
            public = args.key.with_name(f"{args.key.stem}.keyring.json")
            write_keyring(public, [key.public_key()], comment=args.comment)
            print(
                f"key {key_id(key.public_key())}: private in {args.key} (keep it offline), public in {public}"
            )
            return 0
        statements = read_statements(args.statements)
        if args.action == "show":
            trusting, changes = appliance_reading(args.keyring, statements)
        else:
            signer = load_private_key(args.by)
            if args.action == "endorse":
                added = [endorse(k, signer, args.comment) for k in new_keys(args.new)]
            else:
                added = [revoke(args.key_id, signer)]
            trusting, changes = appliance_reading(args.keyring, [*statements, *added])
            _, before = appliance_reading(args.keyring, statements)
            if len(changes) == len(before):
                fail(f"{args.action}: nothing would change (the statement is already in {args.statements})")
            write_atomic(args.statements, json.dumps([*statements, *added], indent=2) + "\n")
        for change in changes:
            print(change)
        print(f"trusted after them: {', '.join(trusting.ids)}")
        if trusting.revoked:
            print(f"revoked: {', '.join(sorted(trusting.revoked))}")
    except ApplianceError as e:
        fail(e.message)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
