"""The installed ``podium`` command against the real server and the simulator, as an administrator uses it."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import sqlite3
import struct
import subprocess
import termios
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from podium.auth.tokens import digest

from ..harness.cliproc import PODIUM, config_of, environ, objects, ok, podium, wait_seen
from ..harness.serverproc import ADMIN_EMAIL, ADMIN_PASSWORD, Server, free_port, start_server
from ..harness.simdisks import MiB, get_raw, guest_with_disk, pattern, put_raw
from ..harness.simproc import BUNDLED_DB, Sim, jsonrpc, start_sim
from ..harness.simproc import master_session as login

pytestmark = pytest.mark.integration
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@dataclass
class Setup:
    sim: Sim
    server: Server
    home: Path  # an admin registered with the server, which has the simulated pool
    server_id: str  # what `podium server.add` printed


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    sim = start_sim("--db", str(BUNDLED_DB), "--op-seconds", "0.01")
    server = start_server(tmp_path_factory.mktemp("data"))
    try:
        home = tmp_path_factory.mktemp("admin")
        ok("--register", server.url, ADMIN_EMAIL, ADMIN_PASSWORD, home=home)
        master = sim.master(0)
        added = ok(
            "server.add",
            f"host={master.url}",
            f"username={sim.user}",
            f"password={sim.password}",
            "label=simulated",
            home=home,
        )
        for _ in range(100):
            if objects(home, "type=pool"):
                break
            time.sleep(0.2)
        yield Setup(sim, server, home, added)
    finally:
        server.stop()
        sim.stop()


def halted_vm_with_disk(sim: Sim, home: Path) -> tuple[str, str, bytes]:
    """A new halted VM with a 5 MiB disk of known content: (VM uuid, disk uuid, content)."""
    url, s = login(sim)
    vm_ref, vdi_ref, rec = guest_with_disk(url, s)
    data = pattern(int(rec["virtual_size"]))
    put_raw(url, s, vdi_ref, data)
    vm = jsonrpc(url, "VM.get_uuid", s, vm_ref)
    wait_seen(home, vm)
    return vm, rec["uuid"], data


def disk_sr(home: Path) -> str:
    return next(sr["id"] for sr in objects(home, "type=SR", "SR_type=lvm"))


# --- the usage page's examples, as written ----------------------------------------------------------


def test_usage_examples_work_as_written(setup: Setup, tmp_path: Path) -> None:
    r = podium("--register", setup.server.url, ADMIN_EMAIL, ADMIN_PASSWORD, home=tmp_path)
    assert r.returncode == 0 and r.stderr.strip() == f"Successfully logged with {ADMIN_EMAIL}"
    assert UUID.match(setup.server_id.strip()), setup.server_id  # `server.add …` prints the new id
    templates = objects(tmp_path, "type=VM-template")
    assert templates and all(t["type"] == "VM-template" for t in templates)
    everything = json.loads(ok("xo.getAllObjects", "--json", home=tmp_path))
    assert len(templates) == sum(o["type"] == "VM-template" for o in everything.values())
    methods = ok("--list-commands", "{user,group}.*", home=tmp_path).splitlines()
    names = [line.split()[0] for line in methods if not line.startswith(" ")]
    assert "user.create" in names and "group.create" in names
    assert all(n.startswith(("user.", "group.")) for n in names)
    r = podium("foo.bar", "baz=json:[1, 2, 3]", home=tmp_path)
    assert r.returncode == 1 and "no method foo.bar" in r.stderr
    assert "foo.bar {'baz': [1, 2, 3]}" in setup.server.log()  # the list reached the server as a list


def test_register_keeps_a_token_never_the_password(setup: Setup, tmp_path: Path) -> None:
    ok("register", setup.server.url, ADMIN_EMAIL, home=tmp_path, input=ADMIN_PASSWORD + "\n")  # asked for
    path = tmp_path / "podium" / "config.json"
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    config = config_of(tmp_path)
    assert config["server"] == setup.server.url and config["token"] and config["clientId"]
    assert ADMIN_PASSWORD not in path.read_text()
    ok("register", setup.server.url, ADMIN_EMAIL, ADMIN_PASSWORD, home=tmp_path)
    assert config_of(tmp_path)["token"] == config["token"]  # the same client gets its token back
    assert json.loads(ok("session.getUser", home=tmp_path))["email"] == ADMIN_EMAIL


def test_tokens_created_given_expired_and_revoked(setup: Setup, tmp_path: Path) -> None:
    maker, user, other = tmp_path / "maker", tmp_path / "user", tmp_path / "other"
    r = podium(
        "--createToken", setup.server.url, ADMIN_EMAIL, ADMIN_PASSWORD, "--expiresIn", "2 hours", home=maker
    )
    assert r.returncode == 0 and "Authentication token created" in r.stderr
    token = r.stdout.strip()
    assert re.fullmatch(r"[\w-]{20,}", token) and not (maker / "podium").exists()
    r = podium("register", "--token", token, setup.server.url, home=user)
    assert r.returncode == 0 and f"Successfully logged with {ADMIN_EMAIL}" in r.stderr
    assert config_of(user)["token"] == token
    url = setup.server.url.replace("://", f"://{token}@")
    assert json.loads(ok("--url", url, "session.getUser", home=other))["email"] == ADMIN_EMAIL

    with sqlite3.connect(setup.server.data_dir / "podium.db") as db:  # two hours later
        db.execute("UPDATE tokens SET expires = '2001-01-01 00:00:00.000000' WHERE id = ?", (digest(token),))
    r = podium("session.getUser", home=user)
    assert r.returncode == 4 and "expired" in r.stderr and f"podium register {setup.server.url}" in r.stderr

    token = ok("create-token", setup.server.url, ADMIN_EMAIL, ADMIN_PASSWORD, home=maker).strip()
    ok("register", "--token", token, setup.server.url, home=user)
    r = podium("unregister", home=user)
    assert r.returncode == 0 and "revoked" in r.stderr and "token" not in config_of(user)
    r = podium("--url", setup.server.url.replace("://", f"://{token}@"), "session.getUser", home=other)
    assert r.returncode == 4 and "refused the token" in r.stderr
    r = podium("register", "--token", "not-a-token", setup.server.url, home=other)
    assert r.returncode == 4 and not (other / "podium").exists()


def test_refusals_say_what_to_do(setup: Setup, tmp_path: Path) -> None:
    ok(
        "user.create",
        "email=bob@podium.test",
        "password=bob's long password",
        "permission=none",
        home=setup.home,
    )
    r = podium("register", setup.server.url, "bob@podium.test", "wrong password", home=tmp_path)
    assert r.returncode == 4 and "refused bob@podium.test" in r.stderr and not (tmp_path / "podium").exists()
    port = free_port()
    r = podium("register", f"http://127.0.0.1:{port}", ADMIN_EMAIL, "x", home=tmp_path)
    assert r.returncode == 3 and f"cannot reach 127.0.0.1:{port}" in r.stderr
    r = podium("register", "podium.example.net", ADMIN_EMAIL, "x", home=tmp_path)
    assert r.returncode == 2 and "https://podium.example.net" in r.stderr
    r = podium("register", setup.server.url, home=tmp_path)
    assert r.returncode == 2 and "give the user" in r.stderr
    r = podium("register", setup.server.url, ADMIN_EMAIL, "pass-word-1", "extra", home=tmp_path)
    assert r.returncode == 2 and "too many arguments" in r.stderr and "pass-word-1" not in r.stderr
    r = podium("vm.start", "id=x", home=tmp_path)
    assert r.returncode == 4 and "podium register" in r.stderr
    assert podium("--bogus", home=tmp_path).returncode == 2
    help_ = podium("--help", home=tmp_path)
    assert (
        help_.returncode == 0 and "130 interrupted" in help_.stdout and "3 connection or TLS" in help_.stdout
    )


def test_calls_explain_bad_methods_and_parameters(setup: Setup) -> None:
    home = setup.home
    assert ok("token.deleteOwn", 'tokens=json:["no-such-token"]', home=home).strip() == "0"
    r = podium("vm.strat", "id=x", home=home)
    assert r.returncode == 1 and "no method vm.strat" in r.stderr and "vm.start" in r.stderr
    r = podium("--traceback", "vm.strat", "id=x", home=home)
    assert r.returncode == 1 and "Traceback" in r.stderr and "no method vm.strat" in r.stderr
    r = podium("vm.start", home=home)
    assert (
        r.returncode == 1
        and "id: missing (expected string)" in r.stderr
        and "usage: podium vm.start" in r.stderr
    )
    r = podium("vm.start", "id=json:3", "colour=blue", home=home)
    assert r.returncode == 1 and "id: must be string" in r.stderr
    assert "colour: not a parameter of this method" in r.stderr
    r = podium("token.deleteOwn", "tokens=nope", home=home)
    assert r.returncode == 1 and "tokens: must be array" in r.stderr
    r = podium("vm.start", "id=x", "force", home=home)
    assert r.returncode == 2 and "'force' is not NAME=VALUE" in r.stderr
    r = podium("vm.start", "id=x", "tags=json:[1", home=home)
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    r = podium("vm.start", "id=00000000-0000-0000-0000-000000000000", home=home)
    assert r.returncode == 1 and "no such" in r.stderr


def test_list_objects_and_commands_filter(setup: Setup) -> None:
    pools = objects(setup.home, "type=pool", "--name_label", "--id")
    assert pools and all(set(p) == {"name_label", "id"} for p in pools)
    listed = json.loads(ok("list-commands", "--json", "vm.*", "!vm.get*", home=setup.home))
    assert "vm.start" in listed and all(n.startswith("vm.") and not n.startswith("vm.get") for n in listed)
    assert listed["vm.start"]["params"]["id"]["type"] == "string"


# --- files: @=FILE ---------------------------------------------------------------------------------


def test_export_and_import_round_trip(setup: Setup, tmp_path: Path) -> None:
    vm, _disk, data = halted_vm_with_disk(setup.sim, setup.home)
    xva = tmp_path / "vm.xva"
    r = podium("vm.export", f"vm={vm}", f"@={xva}", home=setup.home)
    assert r.returncode == 0 and f"saved {xva}" in r.stderr
    assert xva.stat().st_size > len(data) // 2 and not list(tmp_path.glob(".*part"))
    streamed = subprocess.run(
        [str(PODIUM), "vm.export", f"vm={vm}", "@=-"],
        capture_output=True,
        env=environ(setup.home),
        timeout=60,
    )
    assert streamed.returncode == 0 and streamed.stdout[257:262] == b"ustar"  # a tar stream on stdout
    (tmp_path / "dir").mkdir()
    ok("vm.export", f"vm={vm}", f"@={tmp_path}/dir/", home=setup.home)
    assert [p.suffix for p in (tmp_path / "dir").iterdir()] == [".xva"]

    new = ok("vm.import", f"sr={disk_sr(setup.home)}", f"@={xva}", home=setup.home).strip()
    assert UUID.match(new) and new != vm
    assert f"started ({xva.stat().st_size:,} bytes)" in setup.server.log()  # Content-Length was sent
    url, s = login(setup.sim)
    ref = jsonrpc(url, "VM.get_by_uuid", s, new)
    vdis = [jsonrpc(url, "VBD.get_VDI", s, vbd) for vbd in jsonrpc(url, "VM.get_VBDs", s, ref)]
    contents = [get_raw(url, s, v) for v in vdis if v != "OpaqueRef:NULL"]
    assert data in contents


def test_bad_files_are_refused_and_leave_nothing(setup: Setup, tmp_path: Path) -> None:
    vm, _disk, _data = halted_vm_with_disk(setup.sim, setup.home)
    sr = disk_sr(setup.home)
    r = podium("vm.import", f"sr={sr}", f"@={tmp_path}/nope.xva", home=setup.home)
    assert r.returncode == 2 and f"no such file: {tmp_path}/nope.xva" in r.stderr
    r = podium("vm.export", f"vm={vm}", "@=/no/such/dir/vm.xva", home=setup.home)
    assert r.returncode == 2 and "no such file or directory" in r.stderr
    r = podium("vm.export", f"vm={vm}", home=setup.home)
    assert r.returncode == 2 and "add @=FILE" in r.stderr

    xva = tmp_path / "vm.xva"
    ok("vm.export", f"vm={vm}", f"@={xva}", home=setup.home)
    cut = tmp_path / "cut.xva"
    cut.write_bytes(xva.read_bytes()[: 3 * MiB])
    url, s = login(setup.sim)
    before = len(jsonrpc(url, "VM.get_all", s))
    r = podium("vm.import", f"sr={sr}", f"@={cut}", home=setup.home)
    assert r.returncode == 1 and "truncated" in r.stderr, r.stderr
    assert len(jsonrpc(url, "VM.get_all", s)) == before
    # From a pipe, the length is unknown: the pool is told where the data ended, and does not wait for more.
    piped = subprocess.run(
        [str(PODIUM), "vm.import", f"sr={sr}", "@=-"],
        input=cut.read_bytes(),
        capture_output=True,
        env=environ(setup.home),
        timeout=60,
    )
    assert piped.returncode == 1 and b"truncated" in piped.stderr, piped.stderr
    assert "started (length unknown)" in setup.server.log()
    assert len(jsonrpc(url, "VM.get_all", s)) == before


def _pty_stderr(args: list[str], home: Path) -> tuple[int, str]:
    """Run podium with stderr on a terminal 100 columns wide; its exit status and what the terminal showed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen([str(PODIUM), *args], stdout=subprocess.DEVNULL, stderr=slave, env=environ(home))
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    os.close(master)
    return proc.wait(60), shown.decode(errors="replace")


def test_transfers_show_progress_on_a_terminal(setup: Setup, tmp_path: Path) -> None:
    vm, _disk, _data = halted_vm_with_disk(setup.sim, setup.home)
    xva = tmp_path / "vm.xva"
    status, shown = _pty_stderr(["vm.export", f"vm={vm}", f"@={xva}"], setup.home)
    assert status == 0 and "B/s" in shown and "vm" in shown
    status, shown = _pty_stderr(["vm.import", f"sr={disk_sr(setup.home)}", f"@={xva}"], setup.home)
    assert status == 0 and "100%" in shown and "B/s" in shown  # the size is known: a bar with an end
    quiet = podium("vm.export", f"vm={vm}", f"@={tmp_path}/quiet.xva", home=setup.home)
    assert "B/s" not in quiet.stderr  # no terminal, no bar


@pytest.mark.parametrize(
    ("sig", "status", "said"),
    [(signal.SIGINT, 130, b"interrupted"), (signal.SIGTERM, 143, b"stopped by SIGTERM")],
)
def test_interrupted_upload_exits_and_the_pool_keeps_nothing(
    setup: Setup, tmp_path: Path, sig: signal.Signals, status: int, said: bytes
) -> None:
    vm, _disk, _data = halted_vm_with_disk(setup.sim, setup.home)
    xva = tmp_path / "vm.xva"
    ok("vm.export", f"vm={vm}", f"@={xva}", home=setup.home)
    url, s = login(setup.sim)
    before = set(jsonrpc(url, "VM.get_all", s))
    proc = subprocess.Popen(
        [str(PODIUM), "vm.import", f"sr={disk_sr(setup.home)}", "@=-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=False,
        env=environ(setup.home),
    )
    assert proc.stdin is not None
    proc.stdin.write(xva.read_bytes()[: 2 * MiB])
    proc.stdin.flush()
    time.sleep(1.5)  # the upload is under way, waiting for more
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == status and said in err and b"Traceback" not in err
    for _ in range(50):  # the server saw its client go, and cancelled the pool's import
        pending = [t for t in jsonrpc(url, "task.get_all_records", s).values() if t["status"] == "pending"]
        if set(jsonrpc(url, "VM.get_all", s)) == before and not pending:
            break
        time.sleep(0.1)
    assert set(jsonrpc(url, "VM.get_all", s)) == before and not pending


def test_watch_shows_a_vm_start_as_it_happens(setup: Setup) -> None:
    vm, _disk, _data = halted_vm_with_disk(setup.sim, setup.home)
    watchers = [
        subprocess.Popen(
            [str(PODIUM), "watch", *flag],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environ(setup.home),
        )
        for flag in ([], ["--ndjson"])
    ]
    try:
        for w in watchers:
            assert w.stderr is not None and "watching" in w.stderr.readline()
        ok("vm.start", f"id={vm}", home=setup.home)
        seen = []
        for w in watchers:
            assert w.stdout is not None
            deadline = time.monotonic() + 10
            line = ""
            while time.monotonic() < deadline:
                line = w.stdout.readline()
                if vm in line and "Running" in line:
                    break
            seen.append(line)
        assert re.search(rf"enter VM {vm} .*power_state=Running", seen[0]), seen[0]
        note = json.loads(seen[1])
        assert note["method"] == "all" and note["params"]["items"][vm]["power_state"] == "Running"
    finally:
        for w in watchers:
            w.send_signal(signal.SIGINT)
    for w in watchers:
        _, err = w.communicate(timeout=15)
        assert w.returncode == 0 and "all:" in err and "Traceback" not in err


def _on_terminal(args: list[str], home: Path, keys: bytes) -> tuple[int, str]:
    """Run podium on a pseudo-terminal of its own, type ``keys`` once it asks for the password."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: the terminal is its controlling terminal, as in a shell
        os.execve(str(PODIUM), [str(PODIUM), *args], environ(home))
    shown = b""
    typed = False
    deadline = time.monotonic() + 30
    while True:
        if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise AssertionError(f"podium did not finish: {shown!r}")
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
        if not typed and b"Password:" in shown:
            os.write(fd, keys)
            typed = True
    os.close(fd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), shown.decode(errors="replace")


def test_password_prompt_takes_typing_and_ctrl_c(setup: Setup, tmp_path: Path) -> None:
    status, shown = _on_terminal(["register", setup.server.url, ADMIN_EMAIL], tmp_path, b"\x03")
    assert status == 130 and "interrupted" in shown and "Traceback" not in shown
    status, shown = _on_terminal(
        ["register", setup.server.url, ADMIN_EMAIL], tmp_path, ADMIN_PASSWORD.encode() + b"\r"
    )
    assert status == 0 and f"Successfully logged with {ADMIN_EMAIL}" in shown
    assert ADMIN_PASSWORD not in shown  # not echoed
