"""The appliance image booted in qemu, for ``make image-test``.

The XVA is unpacked with Podium's own reader (podium.xva.extract) into a sparse raw disk; the test's SSH key
is written into its root file system with debugfs (what an administrator does to reach a fresh appliance:
the image ships with no key and no password); qemu boots it by BIOS, as a pool would, with the accelerator
``make xva`` found working. User-mode networking with ``restrict=on``: SSH, HTTP and HTTPS are forwarded from
loopback ports, the host's update server is at ``UPDATE_ADDRESS`` for the guest (guestfwd), nothing else goes
in or out. The serial console is a file the tests read.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import testinfra

from podium.xva import extract, read_header

from ..harness.serverproc import free_port

ROOT = Path(__file__).resolve().parents[2]
BUILD = ROOT / "build"
#: Where the root file system starts on the image's disk (image/build.py).
PARTITION_OFFSET = 1024**2
#: The host's update server as the guest sees it.
RELAY = Path(__file__).with_name("relay.py")  # one process per guest connection to the update server
UPDATE_ADDRESS = "10.0.2.100"


def insecure_tls() -> ssl.SSLContext:
    """TLS without verification: the appliance's first certificate is self-signed (tests compare its
    fingerprint with the one on the console instead)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def newest_xva() -> Path:
    """The XVA ``make xva`` made (``PODIUM_XVA`` names another)."""
    if os.environ.get("PODIUM_XVA"):
        return Path(os.environ["PODIUM_XVA"])
    found = sorted(BUILD.glob("podium-appliance-*.xva"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise RuntimeError(f"no podium-appliance-*.xva in {BUILD}: run `make xva` (make image-test does)")
    return found[-1]


def accelerator() -> str:
    """The accelerator ``make xva`` found working (``PODIUM_ACCEL`` overrides)."""
    chosen = os.environ.get("PODIUM_ACCEL", "")
    if chosen in ("kvm", "tcg"):
        return chosen
    probed = BUILD / "image" / "accelerator"
    return probed.read_text().strip() if probed.is_file() else "tcg"


def unpack(xva: Path, folder: Path) -> Path:
    """The XVA's one disk as a sparse raw file in ``folder``."""
    header = read_header(xva)
    disks = extract(xva, folder)
    if len(disks) != 1:
        raise AssertionError(f"the appliance XVA should hold one disk, not {len(disks)}: {header}")
    return next(iter(disks.values()))


def add_ssh_key(disk: Path, public_key: Path) -> None:
    """Put ``public_key`` in root's authorized_keys on the disk's root file system (debugfs, offline)."""
    commands = (
        "mkdir /root/.ssh\n"
        f"write {public_key} /root/.ssh/authorized_keys\n"
        "sif /root/.ssh mode 040700\n"
        "sif /root/.ssh/authorized_keys mode 0100600\n"
        "sif /root/.ssh/authorized_keys uid 0\n"
        "sif /root/.ssh/authorized_keys gid 0\n"
    )
    device = f"{disk}?offset={PARTITION_OFFSET}"
    subprocess.run(
        ["debugfs", "-w", "-f", "-", device], input=commands, text=True, capture_output=True, check=True
    )
    argv = ["debugfs", "-R", "cat /root/.ssh/authorized_keys", device]
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    if public_key.read_text().strip() not in done.stdout:
        raise AssertionError(f"the SSH key did not land on the disk: {done.stdout!r} {done.stderr!r}")


@dataclass
class Vm:
    """One qemu running the appliance's disk."""

    disk: Path
    folder: Path
    update_port: int
    accel: str = field(default_factory=accelerator)
    ports: dict[int, int] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    booted_at: float = 0.0
    boot_verdict: str = ""  # systemctl is-system-running at the end of the first boot
    wizard_seconds: float = 0.0  # from power-on to the wizard answering over HTTPS

    @property
    def key(self) -> Path:
        return self.folder / "id_ed25519"

    @property
    def serial(self) -> Path:
        return self.folder / "serial.log"

    @property
    def ssh_config(self) -> Path:
        return self.folder / "ssh_config"

    def prepare(self) -> None:
        """The test's SSH key on the disk, and an ssh_config for ssh and testinfra."""
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "podium-image-test", "-f", str(self.key)],
            check=True,
        )
        add_ssh_key(self.disk, self.key.with_suffix(".pub"))
        self.ports = {22: free_port(), 80: free_port(), 443: free_port()}
        self.ssh_config.write_text(
            "Host appliance\n"
            "  HostName 127.0.0.1\n"
            f"  Port {self.ports[22]}\n"
            "  User root\n"
            f"  IdentityFile {self.key}\n"
            "  IdentitiesOnly yes\n"
            "  StrictHostKeyChecking no\n"
            "  UserKnownHostsFile /dev/null\n"
            "  LogLevel ERROR\n"
            "  ConnectTimeout 10\n"
            "  ServerAliveInterval 5\n"
            f"  ControlPath {self.folder}/cm-%C\n"
            "  ControlMaster auto\n"
            "  ControlPersist 120\n"
        )

    def start(self) -> None:
        """Power on (BIOS boot from the disk, as the pool does)."""
        forwards = ",".join(f"hostfwd=tcp:127.0.0.1:{host}-:{guest}" for guest, host in self.ports.items())
        netdev = (
            f"user,id=net0,restrict=on,{forwards},"
            f"guestfwd=tcp:{UPDATE_ADDRESS}:80-cmd:{sys.executable} {RELAY} 127.0.0.1 {self.update_port}"
        )
        argv = ["qemu-system-x86_64", "-accel", self.accel, "-machine", "pc", "-m", "2048", "-smp", "2"]
        argv += ["-display", "none", "-vga", "std", "-serial", f"file:{self.serial}"]
        argv += ["-drive", f"file={self.disk},format=raw,if=virtio,discard=unmap"]
        argv += ["-netdev", netdev, "-device", "virtio-net-pci,netdev=net0", "-boot", "c"]
        self.serial.unlink(missing_ok=True)
        self.booted_at = time.monotonic()
        with (self.folder / "qemu.log").open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def serial_text(self) -> str:
        return self.serial.read_text(errors="replace") if self.serial.exists() else ""

    def wait_serial(self, text: str, seconds: float) -> float:
        """Seconds since power-on until ``text`` shows on the serial console."""
        deadline = time.monotonic() + seconds
        while text not in self.serial_text():
            self._check_running()
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{text!r} not on the serial console after {seconds:.0f} s:\n{self.serial_text()[-3000:]}"
                )
            time.sleep(0.5)
        return time.monotonic() - self.booted_at

    def _check_running(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            log = (self.folder / "qemu.log").read_text(errors="replace")
            raise AssertionError(f"qemu exited with status {self.proc.returncode}: {log[-2000:]}")

    def ssh(
        self, command: str, *, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run ``command`` in the appliance as root."""
        argv = ["ssh", "-F", str(self.ssh_config), "appliance", command]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"`{command}` failed ({done.returncode}): {done.stderr}{done.stdout}")
        return done

    def wait_ssh(self, seconds: float) -> float:
        """Seconds since power-on until SSH answers."""
        deadline = time.monotonic() + seconds
        while True:
            self._check_running()
            with contextlib.suppress(subprocess.TimeoutExpired):
                if self.ssh("true", check=False, timeout=20).returncode == 0:
                    return time.monotonic() - self.booted_at
            if time.monotonic() > deadline:
                raise AssertionError(f"no SSH after {seconds:.0f} s:\n{self.serial_text()[-3000:]}")
            time.sleep(2)

    def wait_booted(self, seconds: float) -> str:
        """systemd's verdict once the boot is over: ``running``, or ``degraded`` when a unit failed."""
        return self.ssh("systemctl is-system-running --wait", check=False, timeout=seconds).stdout.strip()

    def wait_https(self, path: str, seconds: float) -> float:
        """Seconds since power-on until nginx answers ``path`` with 200 over HTTPS."""
        context = insecure_tls()
        deadline = time.monotonic() + seconds
        while True:
            self._check_running()
            conn = http.client.HTTPSConnection("127.0.0.1", self.ports[443], timeout=10, context=context)
            try:
                conn.request("GET", path)
                if conn.getresponse().status == 200:
                    return time.monotonic() - self.booted_at
            except OSError:
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline:
                raise AssertionError(f"no 200 for {path} after {seconds:.0f} s")
            time.sleep(0.5)

    def host(self) -> testinfra.host.Host:
        """A testinfra host over SSH."""
        return testinfra.get_host("ssh://appliance", ssh_config=str(self.ssh_config))

    def reboot(self, seconds: float) -> float:
        """Reboot from inside, and wait for SSH again; seconds from the reboot to SSH."""
        self._drop_master()
        self.ssh("systemctl reboot", check=False, timeout=30)
        time.sleep(5)
        self.serial.write_text("")  # the next boot's console only
        self.booted_at = time.monotonic()
        return self.wait_ssh(seconds)

    def _drop_master(self) -> None:
        argv = ["ssh", "-F", str(self.ssh_config), "-O", "exit", "appliance"]
        subprocess.run(argv, capture_output=True, check=False, timeout=10)

    def stop(self) -> None:
        """Power off: ACPI shutdown asked over SSH, then qemu killed if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.ssh("systemctl poweroff", check=False, timeout=15)
        self._drop_master()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
