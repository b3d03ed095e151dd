"""scripts/make_bundle.py and scripts/make_channel.py on this tree: real bundles an appliance accepts."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from podium_appliance.update.bundle import extract_payload, verify_bundle
from podium_appliance.update.channel import verify_index
from podium_appliance.update.signing import Keyring

from ....harness.updateproc import MAKE_BUNDLE

# The first build on a machine builds the dependencies' wheels (build/wheels); later ones take seconds.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def test_make_bundle_builds_an_accepted_bundle_of_this_tree(real_bundle_factory, layout, tmp_path):
    path = real_bundle_factory("0.2.0", notes="# 0.2.0\n\nBetter things.\n")
    assert path.name == "podium-0.2.0.bundle"
    real_bundle_factory.install_keyring(layout)
    manifest = verify_bundle(path, Keyring.load(layout), channel="stable", installed_version="0.1.0")
    assert manifest.version == "0.2.0" and manifest.min_version == "0.1.0"
    assert manifest.notes == "# 0.2.0\n\nBetter things.\n"
    assert "podium-0.2.0-py3-none-any.whl" in manifest.wheels
    names = {w.split("-")[0].lower() for w in manifest.wheels}
    assert {"aiohttp", "cryptography", "sqlalchemy", "alembic", "packaging", "multidict"} <= names

    dest = tmp_path / "releases" / "0.2.0"
    extract_payload(path, manifest, dest)
    assert sorted(p.name for p in (dest / "wheels").iterdir()) == sorted(manifest.wheels)
    assert (dest / "rootfs/etc/systemd/system/podium-server.service").is_file()
    with zipfile.ZipFile(dest / "wheels/podium-0.2.0-py3-none-any.whl") as wheel:
        assert '__version__ = "0.2.0"' in wheel.read("podium/__init__.py").decode()
        assert "podium_appliance/update/bundle.py" in wheel.namelist()


def test_make_channel_publishes_a_signed_index_of_the_bundles(real_bundle_factory, layout, tmp_path):
    stable = real_bundle_factory("0.2.0", notes="# 0.2.0\n\nBetter things.\n")
    latest = real_bundle_factory("0.3.0", channel="latest", min_version="0.2.0")
    real_bundle_factory.install_keyring(layout)
    keyring = Keyring.load(layout)

    server = tmp_path / "server"
    index_path = real_bundle_factory.channel([stable, latest], "stable", server, "--serial", "42")
    assert index_path == server / "stable" / "index.json"
    index = verify_index(index_path.read_bytes(), keyring, channel="stable", last_serial=41)
    assert index.serial == 42 and [r.version for r in index.releases] == ["0.2.0"]  # 0.3.0 is on latest
    newest = index.newest("0.1.0")
    assert newest is not None and newest.notes == "# 0.2.0\n\nBetter things.\n"
    newest.check_file(server / "stable" / newest.file)

    index_path = real_bundle_factory.channel([stable, latest], "latest", server, "--expires-days", "1")
    index = verify_index(index_path.read_bytes(), keyring, channel="latest")
    assert index.newest("0.1.0") is None and index.newest("0.2.0").version == "0.3.0"  # type: ignore[union-attr]

    with pytest.raises(AssertionError, match="lower than the published 42"):
        real_bundle_factory.channel([stable], "stable", server, "--serial", "41")


def test_make_bundle_refuses_a_bad_version_before_building(tmp_path):
    argv = [sys.executable, str(MAKE_BUNDLE), "--version", "two", "--key", str(tmp_path / "k")]
    argv += ["--out", str(tmp_path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert "make_bundle: error: --version 'two' is not a version number" in done.stderr
    assert not (tmp_path / "k").exists()
