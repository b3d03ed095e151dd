"""`make bundle`: a signed update bundle of this tree, ``podium-<version>.bundle`` (see
appliance/podium_appliance/update/bundle.py for the format).

    python scripts/make_bundle.py [--version V] [--channel stable] [--min-version 0.1.0] [--notes FILE]
                                  [--key build/keys/release.key] [--out build/bundles]
                                  [--wheel-cache build/wheels] [--key-statements FILE]

The payload holds Podium's wheel, built by ``pip wheel --no-deps`` from a temporary copy of the tree (so the
tree gets no build/ or egg-info from it, and ``--version`` can differ from ``podium.__version__``: the copy's
``__version__`` is rewritten), the wheels of every runtime dependency of pyproject.toml, and a copy of
appliance/rootfs. The dependencies' wheels are built once per dependency list, Python and platform into
``build/wheels/<hash>/`` and reused (pip may use the network the first time). Without a key at ``--key``, a
development key is made there, with its public keyring beside it: an appliance trusts such bundles only if
that keyring is installed as its update keyring.

Progress goes to stderr; the bundle's path is printed on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import zipfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import NoReturn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "appliance"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from packaging.version import InvalidVersion, Version  # noqa: E402

from podium_appliance.errors import ApplianceError  # noqa: E402
from podium_appliance.update.bundle import bundle_name, this_platform, this_python, write_bundle  # noqa: E402
from podium_appliance.update.signing import (  # noqa: E402
    generate_private_key,
    key_id,
    load_private_key,
    write_keyring,
    write_private_key,
)

VERSION_FILE = Path("server/podium/__init__.py")
_VERSION_LINE = re.compile(r'^__version__ = "([^"]+)"$', re.MULTILINE)
#: What setuptools needs to build the wheel; the rest of the tree (tests, build, venv) is left behind.
TREE = ("pyproject.toml", "README.md", "server", "appliance")
_IGNORED = shutil.ignore_patterns(
    "__pycache__", "node_modules", "*.pyc", "*.egg-info", ".mypy_cache", ".ruff_cache"
)
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"make_bundle [{time.monotonic() - STARTED:5.1f} s] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    print(f"make_bundle: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def tree_version(root: Path) -> str:
    match = _VERSION_LINE.search((root / VERSION_FILE).read_text())
    if match is None:
        fail(f'no `__version__ = "..."` line in {root / VERSION_FILE}')
    return match.group(1)


def dependencies(root: Path) -> list[str]:
    """The runtime dependencies pyproject.toml pins."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return list(data["project"]["dependencies"])


def pip(*args: str, what: str, env: dict[str, str] | None = None, must: bool = True) -> bool:
    argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q", *args]
    done = subprocess.run(
        argv, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        if must:
            fail(f"{what} failed (pip exit status {done.returncode}):\n{tail}")
        say(f"{what} failed (pip exit status {done.returncode}): {tail.splitlines()[-1] if tail else ''}")
    return done.returncode == 0


def cached_folder(cache: Path, what: str, fill: Callable[[Path], bool]) -> Path | None:
    """``cache``, filled by ``fill`` once: in a temporary folder renamed into place when complete, so an
    interrupted build leaves nothing half-made and two concurrent builds both end with one whole folder."""
    if (cache / ".complete").is_file():
        say(f"{what}: reusing {cache}")
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.with_name(f".{cache.name}.tmp{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        if not fill(partial):
            return None
        (partial / ".complete").write_text(f"{datetime.now(UTC).isoformat()}\n")
        try:
            partial.rename(cache)
        except OSError:
            if not (cache / ".complete").is_file():  # not a concurrent build finishing first: an error
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return cache


def dependency_wheels(deps: list[str], cache_root: Path, work: Path) -> Path:
    """The folder of the dependencies' wheels: built once per dependency list, Python and platform."""
    fingerprint = json.dumps({"deps": sorted(deps), "python": this_python(), "platform": this_platform()})
    cache = cache_root / hashlib.sha256(fingerprint.encode()).hexdigest()[:16]
    requirements = work / "requirements.txt"
    requirements.write_text("\n".join(deps) + "\n")

    def build(folder: Path) -> bool:
        say(
            f"dependency wheels: building {len(deps)} dependencies and theirs into {cache} (pip, may download)"
        )
        pip("wheel", "-r", str(requirements), "-w", str(folder), what="building the dependencies' wheels")
        shutil.copyfile(requirements, folder / "requirements.txt")
        return True

    folder = cached_folder(cache, "dependency wheels", build)
    assert folder is not None
    say(f"dependency wheels: {len(list(folder.glob('*.whl')))} wheels")
    return folder


def build_tools(root: Path, cache_root: Path) -> Path | None:
    """pyproject.toml's build requirements installed once in a cached folder, so Podium's wheel builds
    without pip making a fresh isolated environment each time (about 3 s); None if they cannot be."""
    requires = sorted(tomllib.loads((root / "pyproject.toml").read_text())["build-system"]["requires"])
    fingerprint = json.dumps({"requires": requires, "python": this_python()})
    cache = cache_root / f"build-tools-{hashlib.sha256(fingerprint.encode()).hexdigest()[:16]}"

    def install(folder: Path) -> bool:
        say(f"build tools: installing {', '.join(requires)} into {cache}")
        return pip(
            "install", "--target", str(folder), *requires, what="installing the build tools", must=False
        )

    return cached_folder(cache, "build tools", install)


def podium_wheel(root: Path, version: str, work: Path, tools: Path | None) -> Path:
    """Podium's wheel, built from a copy of the tree whose ``__version__`` is ``version``."""
    source = work / "source"
    source.mkdir()
    for name in TREE:
        path = root / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=_IGNORED)
        else:
            shutil.copy2(path, source / name)
    current = tree_version(root)
    if version != current:
        file = source / VERSION_FILE
        file.write_text(_VERSION_LINE.sub(f'__version__ = "{version}"', file.read_text(), count=1))
        say(f"podium wheel: version {version} (the tree says {current})")
    out = work / "podium-wheel"
    say("podium wheel: building (pip wheel --no-deps)")
    if tools is not None:
        isolation = ["--no-build-isolation"]
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(tools), os.environ.get("PYTHONPATH")]))}
    else:
        isolation, env = [], {}
    pip(
        "wheel", "--no-deps", *isolation, "-w", str(out), str(source), what="building Podium's wheel", env=env
    )
    (wheel,) = out.glob("*.whl")
    check_wheel(wheel, source)
    return wheel


def check_wheel(wheel: Path, source: Path) -> None:
    """Every file of the packages that is not Python (the UI's modules, templates, migrations) is in the
    wheel: a file pyproject's package-data forgets would otherwise ship a release without it."""
    with zipfile.ZipFile(wheel) as zf:
        inside = set(zf.namelist())
    missing = []
    for top in ("server", "appliance"):
        for path in sorted((source / top).rglob("*")):
            relative = path.relative_to(source / top).as_posix()
            package = source / top / relative.split("/")[0]
            if not (package / "__init__.py").exists() or not path.is_file():
                continue  # not in a package (appliance/rootfs is the image's, not the wheel's)
            if (
                path.suffix not in (".py", ".pyc")
                and "__pycache__" not in relative
                and relative not in inside
            ):
                missing.append(relative)
    if missing:
        fail(f"Podium's wheel lacks {', '.join(missing)}: add them to [tool.setuptools.package-data]")


def release_key(path: Path) -> Ed25519PrivateKey:
    """The signing key at ``path``; a development key is made there on first use."""
    if path.exists():
        try:
            return load_private_key(path)
        except ApplianceError as e:
            fail(e.message)
    key = generate_private_key()
    write_private_key(path, key)
    keyring = path.with_name("keyring.json")
    write_keyring(keyring, [key.public_key()], comment="development key made by make_bundle")
    say(
        f"no key at {path}: made a DEVELOPMENT key {key_id(key.public_key())} there, its public keyring in "
        f"{keyring}; an appliance accepts these bundles only with that keyring installed"
    )
    return key


def default_notes(version: str, root: Path) -> str:
    describe = ["git", "-C", str(root), "describe", "--always", "--dirty=+local changes"]
    try:
        done = subprocess.run(describe, capture_output=True, text=True, check=True, timeout=10)
        commit = done.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    built = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    source = f" from commit {commit}" if commit else ""
    return f"# Podium {version}\n\nBuilt{source} on {built}.\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a signed Podium update bundle of this tree.")
    parser.add_argument("--version", help="the bundle's version (default: podium.__version__ of the tree)")
    parser.add_argument("--channel", default="stable", help="the channel it is released on (default: stable)")
    parser.add_argument(
        "--min-version", default="0.1.0", help="the lowest installed version it upgrades from"
    )
    parser.add_argument(
        "--notes", type=Path, help="release notes, a markdown file (default: a generated line)"
    )
    parser.add_argument("--key", type=Path, default=ROOT / "build/keys/release.key", help="the signing key")
    parser.add_argument("--out", type=Path, default=ROOT / "build/bundles", help="the folder of the bundle")
    parser.add_argument("--wheel-cache", type=Path, default=ROOT / "build/wheels", help="dependency wheels")
    parser.add_argument("--key-statements", type=Path, help="a JSON list of key endorsements and revocations")
    args = parser.parse_args(argv)

    version = args.version or tree_version(ROOT)
    for name, value in (("--version", version), ("--min-version", args.min_version)):
        try:
            Version(value)
        except InvalidVersion:
            fail(f"{name} {value!r} is not a version number")
    notes = default_notes(version, ROOT)
    if args.notes is not None:
        try:
            notes = args.notes.read_text()
        except OSError as e:
            fail(f"cannot read the release notes {args.notes}: {e.strerror}")
    statements: list[object] = []
    if args.key_statements is not None:
        try:
            statements = json.loads(args.key_statements.read_text())
        except (OSError, ValueError) as e:
            fail(f"cannot read the key statements {args.key_statements}: {e}")
    key = release_key(args.key)

    say(f"building podium {version} for the {args.channel} channel (upgrades from {args.min_version})")
    with tempfile.TemporaryDirectory(prefix="podium-bundle-") as tmp:
        work = Path(tmp)
        payload = work / "payload"
        (payload / "wheels").mkdir(parents=True)
        deps = dependency_wheels(dependencies(ROOT), args.wheel_cache.resolve(), work)
        own = podium_wheel(ROOT, version, work, build_tools(ROOT, args.wheel_cache.resolve()))
        for wheel in [*deps.glob("*.whl"), own]:
            try:
                os.link(wheel, payload / "wheels" / wheel.name)
            except OSError:
                shutil.copy2(wheel, payload / "wheels" / wheel.name)
        shutil.copytree(ROOT / "appliance/rootfs", payload / "rootfs", symlinks=True, ignore=_IGNORED)
        fields = {
            "version": version,
            "channel": args.channel,
            "min_version": args.min_version,
            "notes": notes,
            "keys": statements,
        }
        try:
            out = args.out.resolve() / bundle_name(version)
            path = write_bundle(out, fields, payload, key, progress=say)
        except ApplianceError as e:
            fail(e.message)
    say(f"done: {path} ({path.stat().st_size / (1 << 20):.1f} MiB)")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
