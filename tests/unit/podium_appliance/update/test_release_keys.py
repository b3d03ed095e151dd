"""scripts/release_keys.py: a key rotation written by the release tool, read the way an appliance reads it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from podium_appliance.update.signing import (
    Keyring,
    UpdateRefused,
    load_private_key,
    read_keyring_file,
    sign,
)

from ....harness.updateproc import ROOT

SCRIPT = ROOT / "scripts" / "release_keys.py"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def new_key(folder: Path, name: str) -> tuple[Path, str]:
    done = run("new", folder / f"{name}.key", "--comment", f"{name} release key")
    assert done.returncode == 0, done.stderr
    (key,) = read_keyring_file(folder / f"{name}.keyring.json")
    assert key.comment == f"{name} release key" and done.stdout.startswith(f"key {key.id}:")
    assert (folder / f"{name}.key").stat().st_mode & 0o777 == 0o600
    return folder / f"{name}.key", key.id


def test_a_rotation_an_appliance_follows(tmp_path: Path) -> None:
    old, old_id = new_key(tmp_path, "old")
    nxt, next_id = new_key(tmp_path, "next")
    shipped = tmp_path / "old.keyring.json"  # what the image ships
    statements = tmp_path / "statements.json"

    done = run("endorse", statements, "--by", old, nxt, "--keyring", shipped, "--comment", "2027 key")
    assert done.returncode == 0, done.stderr
    assert f"accepted key {next_id} (2027 key), endorsed by key {old_id}" in done.stdout

    appliance = Keyring(read_keyring_file(shipped))
    appliance.accept(json.loads(statements.read_text()))
    data = b"a manifest signed by the new key"
    assert appliance.verify(data, sign(data, load_private_key(nxt))) == next_id

    # the successor revokes the old key; the history keeps both statements, in order
    done = run("revoke", statements, "--by", nxt, old_id, "--keyring", shipped)
    assert done.returncode == 0, done.stderr
    assert f"revoked key {old_id}" in done.stdout and f"trusted after them: {next_id}" in done.stdout
    history = json.loads(statements.read_text())
    assert [set(s) for s in history] == [
        {"key", "signed_by", "signature"},
        {"revoke", "signed_by", "signature"},
    ]
    fresh = Keyring(read_keyring_file(shipped))  # an appliance that missed the first release reads it all
    fresh.accept(history)
    assert fresh.ids == [next_id] and old_id in fresh.revoked
    data = b"signed by the old key after its revocation"
    signature = sign(data, load_private_key(old))
    with pytest.raises(UpdateRefused, match=r"revoked"):
        fresh.verify(data, signature)

    done = run("show", statements, "--keyring", shipped)
    assert done.returncode == 0 and f"trusted after them: {next_id}" in done.stdout


def test_refusals_leave_the_statements_as_they_were(tmp_path: Path) -> None:
    old, _ = new_key(tmp_path, "old")
    stranger, stranger_id = new_key(tmp_path, "stranger")
    shipped = tmp_path / "old.keyring.json"
    statements = tmp_path / "statements.json"
    statements.write_text("[]\n")

    # signed by a key the image does not trust: an appliance would refuse it, so the tool does
    done = run("endorse", statements, "--by", stranger, stranger, "--keyring", shipped)
    assert done.returncode == 1 and f"signed by key {stranger_id}" in done.stderr, done.stderr
    # revoking the only trusted key would leave appliances unable to verify anything
    done = run(
        "revoke", statements, "--by", old, Keyring(read_keyring_file(shipped)).ids[0], "--keyring", shipped
    )
    assert done.returncode == 1 and "no trusted key" in done.stderr, done.stderr
    # the same endorsement twice
    assert run("endorse", statements, "--by", old, stranger, "--keyring", shipped).returncode == 0
    kept = statements.read_text()
    done = run("endorse", statements, "--by", old, stranger, "--keyring", shipped)
    assert done.returncode == 1 and "nothing would change" in done.stderr
    assert statements.read_text() == kept
    # never replaces a key
    done = run("new", old)
    assert done.returncode == 1 and "never replaced" in done.stderr
    # a damaged statements file
    statements.write_text('{"not": "a list"}')
    done = run("show", statements, "--keyring", shipped)
    assert done.returncode == 1 and "not a list" in done.stderr
