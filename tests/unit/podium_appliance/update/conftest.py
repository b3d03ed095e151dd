"""Keys, keyrings and bundles for the updater's tests: small hand-made ones, and real ones of this tree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from podium_appliance.layout import Layout
from podium_appliance.update.bundle import write_bundle
from podium_appliance.update.signing import Keyring, generate_private_key, write_keyring

from ....harness.updateproc import BundleFactory
from .helpers import fields, payload_dir


@pytest.fixture(scope="session")
def real_bundle_factory(tmp_path_factory: pytest.TempPathFactory) -> BundleFactory:
    """Builds real bundles of this tree with scripts/make_bundle.py: ``real_bundle_factory("0.2.0")``."""
    return BundleFactory(tmp_path_factory.mktemp("real-bundles"))


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return generate_private_key()


@pytest.fixture
def keyring(key: Ed25519PrivateKey) -> Keyring:
    return Keyring.from_keys([key.public_key()])


@pytest.fixture
def layout(tmp_path: Path, key: Ed25519PrivateKey) -> Layout:
    """An appliance root whose image trusts ``key``."""
    layout = Layout(tmp_path / "root")
    write_keyring(layout.update_keyring, [key.public_key()], comment="image key")
    return layout


@pytest.fixture
def make_bundle(tmp_path: Path, key: Ed25519PrivateKey) -> Callable[..., Path]:
    """``make_bundle(version="0.2.0", key=None, **manifest_fields)``: a small valid bundle."""
    count = [0]

    def make(version: str = "0.2.0", key: Ed25519PrivateKey = key, **more: Any) -> Path:
        count[0] += 1
        folder = tmp_path / f"bundle{count[0]}"
        payload = payload_dir(folder / "payload")
        return write_bundle(folder / f"podium-{version}.bundle", fields(version, **more), payload, key)

    return make
