"""Real update bundles for tests: ``scripts/make_bundle.py`` run on this tree, as ``make bundle`` runs it.

The dependencies' wheels go to the repository's ``build/wheels`` cache, shared with ``make bundle`` and with
every test session, so only the first build on a machine pays for them (about 12 s from the local indexes;
a build after that takes about 6 s, most of it pip setting up setuptools to build Podium's wheel). Each
factory signs with its own key, made on first use in its folder; :meth:`BundleFactory.install_keyring`
makes an appliance root trust it. :func:`serve_updates` serves a channel the factory wrote.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from podium_appliance.layout import Layout
from podium_appliance.update.signing import (
    Keyring,
    generate_private_key,
    load_private_key,
    read_keyring_file,
    write_keyring,
    write_private_key,
)

from .serverproc import free_port

ROOT = Path(__file__).resolve().parents[2]
MAKE_BUNDLE = ROOT / "scripts" / "make_bundle.py"
MAKE_CHANNEL = ROOT / "scripts" / "make_channel.py"
WHEEL_CACHE = ROOT / "build" / "wheels"
#: A cold build on a slow network; a warm one takes seconds.
BUILD_TIMEOUT = 900


@dataclass
class BundleFactory:
    """Builds bundles of this tree into ``folder``, each build once per set of arguments."""

    folder: Path
    built: dict[tuple[str, ...], Path] = field(default_factory=dict)

    @property
    def key_path(self) -> Path:
        return self.folder / "keys" / "release.key"

    @property
    def keyring_path(self) -> Path:
        """The public keyring of :attr:`key_path` (written by make_bundle with the key)."""
        return self.key_path.with_name("keyring.json")

    def __call__(
        self,
        version: str,
        *,
        channel: str = "stable",
        min_version: str = "0.1.0",
        notes: str | None = None,
        extra: tuple[str, ...] = (),
    ) -> Path:
        """The path of ``podium-<version>.bundle`` built from this tree with these settings."""
        args = ("--version", version, "--channel", channel, "--min-version", min_version, *extra)
        cache_key = (*args, "--notes", "" if notes is None else notes)
        if cache_key not in self.built:
            if notes is not None:
                notes_file = self.folder / f"notes-{len(self.built)}.md"
                notes_file.write_text(notes)
                args += ("--notes", str(notes_file))
            out = self.folder / f"build-{len(self.built)}"
            argv = [sys.executable, str(MAKE_BUNDLE), *args, "--key", str(self.key_path), "--out", str(out)]
            argv += ["--wheel-cache", str(WHEEL_CACHE)]
            done = subprocess.run(argv, capture_output=True, text=True, timeout=BUILD_TIMEOUT, check=False)
            if done.returncode != 0:
                raise AssertionError(f"make_bundle.py {' '.join(args)} failed:\n{done.stderr}")
            self.built[cache_key] = Path(done.stdout.strip().splitlines()[-1])
        return self.built[cache_key]

    def ensure_key(self) -> None:
        """Make the signing key now (make_bundle would on its first build)."""
        if not self.key_path.exists():
            key = generate_private_key()
            write_private_key(self.key_path, key)
            write_keyring(self.keyring_path, [key.public_key()], comment="test release key")

    def keyring(self) -> Keyring:
        """An in-memory keyring trusting this factory's key."""
        self.ensure_key()
        return Keyring(read_keyring_file(self.keyring_path))

    def private_key(self) -> Ed25519PrivateKey:
        self.ensure_key()
        return load_private_key(self.key_path)

    def install_keyring(self, layout: Layout) -> None:
        """Make the appliance under ``layout`` trust this factory's bundles (its image's keyring)."""
        self.ensure_key()
        layout.update_keyring.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.keyring_path, layout.update_keyring)

    def channel(self, bundles: list[Path], channel: str, out: Path, *args: str) -> Path:
        """``scripts/make_channel.py``: an update server's folder ``out`` with ``<channel>/index.json``
        listing ``bundles``; the index's path."""
        source = out.parent / f".{out.name}-{channel}-bundles"
        shutil.rmtree(source, ignore_errors=True)
        source.mkdir(parents=True)
        for bundle in bundles:
            try:
                (source / bundle.name).hardlink_to(bundle)
            except OSError:
                shutil.copyfile(bundle, source / bundle.name)
        argv = [sys.executable, str(MAKE_CHANNEL), str(source), channel, "--out", str(out)]
        argv += ["--key", str(self.key_path), *args]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        shutil.rmtree(source, ignore_errors=True)
        if done.returncode != 0:
            raise AssertionError(f"make_channel.py failed:\n{done.stderr}")
        return Path(done.stdout.strip().splitlines()[-1])


@contextlib.contextmanager
def serve_updates(folder: Path) -> Iterator[str]:
    """An update server serving ``folder`` (as :meth:`BundleFactory.channel` writes it) over plain HTTP on
    loopback; its URL, once it accepts connections."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port), "--directory", str(folder)]
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, (
                    f"nothing listens on port {port}"
                )
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.terminate()
        server.wait()
