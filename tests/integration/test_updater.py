"""The updater on a real appliance root: releases installed from real bundles of this tree (each with its
own venv), the real server run from ``opt/podium/current``, upgrades, a failed upgrade that rolls back by
itself, rollback on demand, refusals, and the updater killed at every phase of an install."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from podium_appliance.update.installer import PHASES
from podium_appliance.update.journal import STOP_AT_ENV

from ..harness.httpproxy import ForwardProxy
from ..harness.pgproc import Postgres
from ..harness.releaseproc import ADMIN, Appliance, make_appliance, process_state
from ..harness.updateproc import ROOT, WHEEL_CACHE, BundleFactory, serve_updates

pytestmark = pytest.mark.timeout(900)

OLD, NEW, BROKEN = "1.0.0", "1.1.0", "1.2.0"
#: A user besides the admin, whose data every update must keep.
KEPT = ("kept@example.org", "kept across updates 123")


def broken_bundle(factory: BundleFactory, folder: Path, version: str, revision: str = "") -> Path:
    """A bundle of this tree whose server cannot start (it fails at import): built from a copy of the
    tree with one line changed, signed with the same key, so only its health check can catch it. With a
    ``revision``, its migrations change the schema and the server fails only when it starts serving (so
    ``podium-server migrate``, which imports it all, gets to run)."""
    tree = folder / "broken-tree"
    if not tree.exists():
        ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "node_modules")
        for part in ("server", "appliance", "scripts"):
            shutil.copytree(ROOT / part, tree / part, ignore=ignore)
        for name in ("pyproject.toml", "README.md", "LICENSE"):
            if (ROOT / name).exists():
                shutil.copy(ROOT / name, tree / name)
        app = tree / "server" / "podium" / "app.py"
        if revision:
            (tree / "server/podium/db/migrations/versions/0002_broken_release.py").write_text(revision)
            code = app.read_text()
            start = "def make_app(settings: Settings) -> web.Application:\n"
            assert start in code
            app.write_text(
                code.replace(start, start + "    raise RuntimeError('this release is broken on purpose')\n")
            )
        else:
            app.write_text(app.read_text() + "\nraise RuntimeError('this release is broken on purpose')\n")
    factory.ensure_key()
    argv = [sys.executable, str(tree / "scripts" / "make_bundle.py"), "--version", version]
    argv += [
        "--key",
        str(factory.key_path),
        "--out",
        str(folder / "broken"),
        "--wheel-cache",
        str(WHEEL_CACHE),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def factory(tmp_path_factory: pytest.TempPathFactory) -> BundleFactory:
    return BundleFactory(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="module")
def bundles(factory: BundleFactory, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return {
        OLD: factory(OLD, notes="The old release."),
        NEW: factory(NEW, notes="The new release: better in every way."),
        BROKEN: broken_bundle(factory, tmp_path_factory.mktemp("broken"), BROKEN),
    }


@pytest.fixture(scope="module")
def box(
    factory: BundleFactory, bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Appliance]:
    """The appliance most tests share: the old release installed as the image build installs it, set up,
    with a user besides the admin. Each test starts from a copy of its files (``appliance``, ``upgraded``),
    not from where the test before left it."""
    factory.ensure_key()
    box = make_appliance(tmp_path_factory.mktemp("appliance"), factory.keyring_path)
    # as the image build does it: the updater's code from the bundle's own wheels, unpacked onto PYTHONPATH
    site = bootstrap_site(bundles[OLD], tmp_path_factory.mktemp("bootstrap"))
    done = box.update("apply", "--bundle", str(bundles[OLD]), env={"PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    assert box.current() == OLD
    set_up_with_a_user(box)
    yield box
    box.stop()


def set_up_with_a_user(box: Appliance, database_url: str = "") -> None:
    """Set the appliance up (its server started), and add the user :data:`KEPT`."""
    box.set_up(database_url=database_url)
    box.call(("user.create", {"email": KEPT[0], "password": KEPT[1]}))


@pytest.fixture(scope="module")
def first_install(box: Appliance, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared appliance's files as its first install left them."""
    copy = tmp_path_factory.mktemp("first-install") / "root"
    box.keep(copy)
    return copy


@pytest.fixture(scope="module")
def upgraded_copy(
    box: Appliance, first_install: Path, bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """A copy of the shared appliance's files once upgraded from the old release to the new one."""
    box.restore(first_install)
    done = box.update("apply", "--bundle", str(bundles[NEW]))
    assert done.returncode == 0, done.stderr
    copy = tmp_path_factory.mktemp("upgraded") / "root"
    box.keep(copy)
    return copy


@pytest.fixture
def appliance(box: Appliance, first_install: Path) -> Appliance:
    """The shared appliance as its first install left it: the old release running, set up."""
    box.restore(first_install)
    return box


@pytest.fixture
def upgraded(box: Appliance, upgraded_copy: Path) -> Appliance:
    """The shared appliance upgraded from the old release to the new one (the old one kept: a way back)."""
    box.restore(upgraded_copy)
    assert box.current() == NEW
    return box


def bootstrap_site(bundle: Path, folder: Path) -> Path:
    """provisioning's first install: every wheel of the bundle unpacked into one folder."""
    with tarfile.open(bundle) as outer:
        payload = outer.extractfile("payload.tar")
        assert payload is not None
        with tarfile.open(fileobj=payload, mode="r|") as inner:
            for member in inner:
                data = inner.extractfile(member) if member.name.endswith(".whl") else None
                if data is not None:
                    with zipfile.ZipFile(io.BytesIO(data.read())) as wheel:
                        wheel.extractall(folder)
    return folder


def users(box: Appliance) -> set[str]:
    (found,) = box.call(("user.getAll", {}))
    return {u["email"] for u in found}


def test_first_install_made_a_working_release(appliance: Appliance) -> None:
    release = appliance.layout.releases / OLD
    assert (release / "release.json").is_file()
    # its own copy of Podium, whatever the installing process had on its PYTHONPATH
    assert (release / "bin" / "podium-appliance").is_file() and (release / "bin" / "podium-server").is_file()
    assert os.readlink(appliance.layout.current) == f"releases/{OLD}"
    (version,) = appliance.call(("system.getServerVersion", {}), sign_in=False)
    assert version == OLD
    assert (appliance.layout.path("etc/systemd/system/podium-updater.service")).is_file()


def test_upgrade_then_a_broken_release_rolls_back_by_itself(
    appliance: Appliance, bundles: dict[str, Path]
) -> None:
    done = appliance.update("apply", "--bundle", str(bundles[NEW]))
    assert done.returncode == 0, done.stderr
    assert f"{NEW} is installed and running" in done.stdout
    assert appliance.current() == NEW
    (version,) = appliance.call(("system.getServerVersion", {}), sign_in=False)
    assert version == NEW
    assert KEPT[0] in users(appliance)

    appliance.layout.updates_toml.write_text('channel = "stable"\nreserve_mib = 0\nhealth_seconds = 15\n')
    done = appliance.update("apply", "--bundle", str(bundles[BROKEN]))
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{BROKEN} failed" in done.stdout and f"{NEW} is running again" in done.stdout
    assert appliance.current() == NEW
    (version,) = appliance.call(("system.getServerVersion", {}), sign_in=False)
    assert version == NEW
    assert KEPT[0] in users(appliance)
    status = json.loads((appliance.layout.update_state / "state.json").read_text())
    assert BROKEN in status["bad"]


# --- refusals: each leaves everything as it was ------------------------------------------------------------
def _flip(src: Path, dest: Path, at: int) -> Path:
    data = bytearray(src.read_bytes())
    data[at] ^= 0x01
    dest.write_bytes(bytes(data))
    return dest


def test_refusals_change_nothing(
    upgraded: Appliance,
    factory: BundleFactory,
    bundles: dict[str, Path],
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    appliance = upgraded
    good = bundles[OLD]
    raw = good.read_bytes()
    notes_at = raw.index(b'"notes"') + 12  # inside manifest.json's text: the signature no longer matches
    stranger = BundleFactory(tmp_path_factory.mktemp("stranger"))(NEW)  # signed by a key nobody trusts
    cases = {
        "bad signature": (_flip(good, tmp_path / "sig.bundle", notes_at), "signature"),
        "unknown key": (stranger, "unknown key"),
        "truncated": (_write(tmp_path / "cut.bundle", raw[: len(raw) // 2]), "truncated"),
        "tampered payload": (_flip(good, tmp_path / "payload.bundle", len(raw) // 2), "payload"),
        "another channel": (factory("1.3.0", channel="latest"), "latest"),
    }
    before = appliance.snapshot()
    listing = sorted(p.name for p in appliance.layout.releases.iterdir())
    for name, (bundle, said) in cases.items():
        done = appliance.update("apply", "--bundle", str(bundle))
        assert done.returncode == 1, f"{name}: {done.stdout} {done.stderr}"
        assert said in done.stderr, f"{name}: {done.stderr}"
        assert appliance.snapshot() == before, name
        assert sorted(p.name for p in appliance.layout.releases.iterdir()) == listing, name
    # a downgrade, unless forced
    done = appliance.update("apply", "--bundle", str(bundles[OLD]))
    assert done.returncode == 1 and "--force" in done.stderr, done.stderr
    # too little disk space
    appliance.layout.updates_toml.write_text('channel = "stable"\nreserve_mib = 1000000000\n')
    done = appliance.update("apply", "--bundle", str(factory("1.4.0")))
    assert done.returncode == 1 and "disk space" in done.stderr, done.stderr
    assert appliance.snapshot() == before
    assert KEPT[0] in users(appliance)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def test_rollback_on_demand(upgraded: Appliance) -> None:
    appliance = upgraded
    done = appliance.update("rollback")
    assert done.returncode == 0, done.stderr
    assert appliance.current() == OLD
    (version,) = appliance.call(("system.getServerVersion", {}), sign_in=False)
    assert version == OLD
    assert KEPT[0] in users(appliance)
    done = appliance.update("rollback")
    assert done.returncode == 1 and "no way back" in done.stderr, done.stderr


# --- the updater killed at every phase ------------------------------------------------------------------
def _killed_at(box: Appliance, stop_at: str, *args: str) -> None:
    """Run ``podium-appliance update ARGS`` until it stops as it enters ``stop_at`` (``operation:phase``),
    and SIGKILL it there."""
    env = {**os.environ, STOP_AT_ENV: stop_at}
    pipe = subprocess.PIPE
    proc = subprocess.Popen(box.update_argv(*args), text=True, stdout=pipe, stderr=pipe, env=env)
    try:
        _wait_stopped(proc, stop_at)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()


def _wait_stopped(proc: subprocess.Popen[str], phase: str) -> None:
    deadline = time.monotonic() + 300
    while process_state(proc.pid) != "T":
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the updater ended before {phase}: {out} {err}")
        assert time.monotonic() < deadline, f"the updater never reached {phase}"
        time.sleep(0.05)


def _recover_with_service(box: Appliance) -> None:
    """What systemd does after the kill: start the updater service again, which finishes the work."""
    box.start_service()
    try:
        deadline = time.monotonic() + 300
        while True:
            done = box.update("status")
            assert done.returncode == 0, done.stderr
            if "busy:" not in done.stdout and "interrupted:" not in done.stdout:
                break
            assert time.monotonic() < deadline, done.stdout
            time.sleep(0.2)
    finally:
        box.stop_service()


def _healthy_with_data(box: Appliance) -> None:
    current = box.current()
    assert current in (OLD, NEW)
    box.wait_healthy()
    (version,) = box.call(("system.getServerVersion", {}), sign_in=False)
    assert version == current
    assert KEPT[0] in users(box)
    assert not (box.layout.update_state / "journal.json").exists()
    assert not (box.layout.releases / ".staging").exists()
    for release in box.layout.releases.iterdir():
        assert (release / "release.json").is_file(), f"a half-made release was left: {release}"


@pytest.fixture(scope="module")
def killbox(
    factory: BundleFactory, bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Appliance]:
    box = make_appliance(tmp_path_factory.mktemp("killbox"), factory.keyring_path)
    done = box.update("apply", "--bundle", str(bundles[OLD]))
    assert done.returncode == 0, done.stderr
    set_up_with_a_user(box)
    yield box
    box.stop()


@pytest.mark.parametrize("phase", PHASES)
def test_killed_at_each_phase_ends_on_a_working_release(
    killbox: Appliance, bundles: dict[str, Path], phase: str
) -> None:
    if killbox.current() == NEW:
        done = killbox.update("rollback")
        assert done.returncode == 0, done.stderr
    if phase in ("unpack", "install"):  # so that it is unpacked and installed again
        shutil.rmtree(killbox.layout.releases / NEW, ignore_errors=True)
    _killed_at(killbox, f"upgrade:{phase}", "apply", "--bundle", str(bundles[NEW]))
    _recover_with_service(killbox)
    _healthy_with_data(killbox)
    assert killbox.current() == (NEW if phase == "commit" else OLD)


def test_killed_during_the_way_back_ends_on_a_working_release(
    killbox: Appliance, bundles: dict[str, Path]
) -> None:
    """A broken release's automatic rollback, itself killed; then an on-demand rollback, killed too."""
    if killbox.current() != NEW:
        assert killbox.update("apply", "--bundle", str(bundles[NEW])).returncode == 0
    killbox.layout.updates_toml.write_text('channel = "stable"\nreserve_mib = 0\nhealth_seconds = 10\n')
    for argv in (("apply", "--bundle", str(bundles[BROKEN]), "--force"), ("rollback",)):
        _killed_at(killbox, "rollback:rollback", *argv)
        _recover_with_service(killbox)
        _healthy_with_data(killbox)
    assert killbox.current() == OLD


# --- the service, through the server's API, and a channel on an update server --------------------------
async def _api_upgrade(box: Appliance, bundle: Path) -> None:
    import aiohttp

    (sendto,) = await box.calls(("updater.upload", {}))
    async with aiohttp.ClientSession() as http:
        with bundle.open("rb") as f:
            async with http.put(f"http://{box.server_listen}{sendto['$sendTo']}", data=f) as resp:
                answer = await resp.json()
    assert "result" in answer, answer
    assert answer["result"]["manifest"]["version"] == NEW
    (started,) = await box.calls(("updater.upgrade", {"upload": answer["result"]["upload"]}))
    assert started["started"] == "upgrade"


def test_an_admin_upgrades_through_the_api(appliance: Appliance, bundles: dict[str, Path]) -> None:
    appliance.start_service()
    try:
        (state,) = appliance.call(("updater.getState", {}))
        assert state["current"] == OLD and state["busy"] is None
        import asyncio

        asyncio.run(_api_upgrade(appliance, bundles[NEW]))
        deadline = time.monotonic() + 300
        while True:  # the server restarts during the upgrade: each poll is a new connection
            try:
                (state,) = appliance.call(("updater.getState", {}))
                if state["busy"] is None and (state["last"] or {}).get("target") == NEW:
                    break
            except (AssertionError, OSError):
                pass
            assert time.monotonic() < deadline, "the upgrade never ended"
            time.sleep(0.5)
        assert state["last"]["ok"], state["last"]
        assert state["current"] == NEW
        # Installed by a service whose umask is 077, the release is still the server's to read and run (it runs
        # as the podium user; these tests run as root, whom modes do not stop, so the modes are checked).
        release = appliance.layout.releases / NEW
        for path in [release, *release.rglob("*")]:
            if path.is_symlink() or path.is_relative_to(release / "rootfs"):
                continue  # rootfs/ keeps the bundle's modes: its files are copied to / as they are
            mode = path.stat().st_mode
            wanted = 0o055 if path.is_dir() or mode & 0o100 else 0o044
            assert mode & wanted == wanted and not mode & 0o022, f"{path}: {oct(mode)}"
        # only admins
        with pytest.raises(AssertionError, match=r"unauthorized|permission|admin"):
            asyncio.run(_as_user(appliance))
    finally:
        appliance.stop_service()


async def _as_user(box: Appliance) -> None:
    import aiohttp

    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://{box.server_listen}/api/") as ws:
        calls = [("session.signIn", {"email": KEPT[0], "password": KEPT[1]}), ("updater.getState", {})]
        for call_id, (method, params) in enumerate(calls, 1):
            await ws.send_json({"jsonrpc": "2.0", "id": call_id, "method": method, "params": params})
            reply = json.loads((await ws.receive()).data)
            if "error" in reply:
                raise AssertionError(reply["error"]["message"])


@pytest.fixture
def site_proxy() -> Iterator[ForwardProxy]:
    """The site's HTTP proxy, through which the appliance reaches its update server."""
    with ForwardProxy() as proxy:
        yield proxy


def test_channel_check_and_download(
    appliance: Appliance,
    factory: BundleFactory,
    bundles: dict[str, Path],
    tmp_path: Path,
    site_proxy: ForwardProxy,
) -> None:
    newest = factory("1.4.0", notes="Release 1.4.0: the newest on stable.")
    out = tmp_path / "updates"
    index = factory.channel([bundles[OLD], bundles[NEW], newest], "stable", out)
    with serve_updates(out) as url:
        config = appliance.layout.updates_toml.read_text()
        kept = [line for line in config.splitlines() if not line.startswith(("url ", "proxy "))]  # set up's
        settings = [f'url = "{url}"', f'proxy = "{site_proxy.url}"']
        appliance.layout.updates_toml.write_text("\n".join(kept + settings) + "\n")
        done = appliance.update("check")
        assert done.returncode == 0, done.stderr
        assert "1.4.0 is available" in done.stdout and "the newest on stable" in done.stdout
        before = appliance.current()
        signed = index.read_text()
        index.write_text(signed.replace('"serial": ', '"serial": 1'))  # changed after signing
        done = appliance.update("check")
        assert done.returncode == 1 and "signature" in done.stderr, done.stderr
        index.write_text(signed)
        done = appliance.update("apply")
        assert done.returncode == 0, done.stderr
        assert appliance.current() == "1.4.0" != before
        (version,) = appliance.call(("system.getServerVersion", {}), sign_in=False)
        assert version == "1.4.0"
        assert KEPT[0] in users(appliance)
        done = appliance.update("check")
        assert done.returncode == 0 and "1.4.0 is the newest release" in done.stdout
        carried = [requested for _, requested in site_proxy.requests]
        assert f"{url}stable/index.json" in carried, carried
        assert any(requested.endswith("/podium-1.4.0.bundle") for requested in carried), carried


def test_snapshot_of_the_appliance_vm_before_upgrading(
    appliance: Appliance, factory: BundleFactory, sim
) -> None:  # type: ignore[no-untyped-def]
    """The appliance's own VM (its uuid from XenStore ``vm``) is snapshotted through the server before an
    upgrade, and only the newest ``snapshots_keep`` of these snapshots are kept."""
    from ..harness.serverproc import Api, connected

    async def add_pool() -> str:
        async with Api(f"http://{appliance.server_listen}") as api:
            await api.call("session.signIn", {"email": ADMIN[0], "password": ADMIN[1]})
            await connected(api, sim)
            vms = await api.call("xo.getAllObjects", {"filter": {"type": "VM", "power_state": "Running"}})
            return str(sorted(vms)[0])

    import asyncio

    vm = asyncio.run(add_pool())
    (appliance.layout.xenstore_standin).mkdir(parents=True, exist_ok=True)
    (appliance.layout.xenstore_standin / "vm").write_text(f"/vm/{vm}")
    config = appliance.layout.updates_toml.read_text()
    appliance.layout.updates_toml.write_text(config + "snapshots_keep = 1\n")

    def snapshots() -> list[str]:
        (found,) = appliance.call(
            ("xo.getAllObjects", {"filter": {"type": "VM-snapshot", "$snapshot_of": vm}})
        )
        return sorted(o["name_label"] for o in found.values() if o["name_label"].startswith("podium-update "))

    before = appliance.current()
    for version in ("1.5.0", "1.6.0"):
        done = appliance.update("apply", "--bundle", str(factory(version)))
        assert done.returncode == 0, done.stderr
        assert f"→ {version}" in " ".join(snapshots())
        assert len(snapshots()) == 1, snapshots()
    assert before != appliance.current() == "1.6.0"


# --- a server on PostgreSQL: its database dumped before migrating, put back when the release fails ----------
MIGRATES = '''"""A release's schema change: a table and a column, with data."""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("notes", sa.Column("id", sa.Integer, primary_key=True))
    op.add_column("users", sa.Column("note", sa.String(50), nullable=False, server_default="migrated"))


def downgrade() -> None:
    pass
'''


def test_a_postgresql_database_is_backed_up_and_put_back(
    factory: BundleFactory, bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory, pg: Postgres
) -> None:
    box = make_appliance(tmp_path_factory.mktemp("pgbox"), factory.keyring_path)
    try:
        done = box.update("apply", "--bundle", str(bundles[OLD]))
        assert done.returncode == 0, done.stderr
        set_up_with_a_user(box, database_url=pg.url())
        assert not (box.layout.server_data / "podium.db").exists()  # the data is in PostgreSQL

        done = box.update("apply", "--bundle", str(bundles[NEW]))  # no schema change: a dump all the same
        assert done.returncode == 0, done.stderr
        assert (box.layout.update_state / "backups" / NEW / "database.pgdump").stat().st_mode & 0o077 == 0

        # a release that migrates the schema, then cannot start: the database comes back as it was
        migrating = broken_bundle(factory, tmp_path_factory.mktemp("migrating"), "1.7.0", revision=MIGRATES)
        box.layout.updates_toml.write_text('channel = "stable"\nreserve_mib = 0\nhealth_seconds = 15\n')
        done = box.update("apply", "--bundle", str(migrating))
        assert done.returncode == 1, done.stdout + done.stderr
        assert (
            "1.7.0 failed (the Podium server did not answer" in done.stdout
            and f"{NEW} is running again" in done.stdout
        )
        assert (box.layout.update_state / "state.json").read_text().count('"schema_changed": true') == 1
        assert box.current() == NEW
        assert pg.psql("SELECT version_num FROM alembic_version").split() == ["0001"]
        assert "notes" not in pg.psql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'").split()
        columns = pg.psql("SELECT column_name FROM information_schema.columns WHERE table_name = 'users'")
        assert "note" not in columns.split()
        assert KEPT[0] in users(box)  # and the server on it answers
    finally:
        box.stop()
