"""`make xva`: the appliance image ``build/podium-appliance-<version>.xva`` (and its ``.sha256``) from this tree.

    python image/build.py --bundle build/bundles/podium-<version>.bundle --keyring build/keys/keyring.json
                          [--accelerator auto|kvm|tcg] [--compression gzip|zstd|none] [--out build]

1. **Base disk** (cached in ``build/image/base-<hash>/``, reused while its inputs are unchanged): mmdebstrap of
   Debian bookworm with every role's ``*_packages`` into a folder, made into an ext4 file system at 1 MiB inside
   a sparse raw disk with an MBR table (``mke2fs -d -E offset``: no loop devices, no root mount), the kernel
   and initramfs beside it, and a throwaway SSH key for the build.
2. **Accelerator**: kvm only when a kernel really boots with it here within a deadline, else tcg.
3. **Packer** (image/packer): boots the base disk, runs provisioning/site.yml with Ansible, installs GRUB,
   removes the build's traces (image/finish.sh); its post-processor packs the disk into the XVA
   (image/pack_xva.py, podium.xva).

Progress goes to the terminal: each step, Ansible's tasks as Packer runs them, the packing's bar. Packer's
full output is kept in ``build/image/packer.log`` and the guest's serial console in ``build/image/serial.log``.
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
import uuid
from pathlib import Path
from typing import NoReturn

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "appliance"))

from podium_appliance.update.bundle import read_manifest  # noqa: E402

#: Bump when the base disk's recipe below changes, so cached base disks are not reused.
BASE_RECIPE = 5
SUITE = "bookworm"
MIRRORS = (
    "deb {debian} bookworm main",
    "deb {debian} bookworm-updates main",
    "deb {security} bookworm-security main",
)
DISK_SIZE = 20 * 1024**3
PARTITION_OFFSET = 1024**2
#: Files of appliance/rootfs the base disk needs before Ansible runs (the network for the build's SSH).
BASE_FILES = ("etc/systemd/network/90-podium-dhcp.network",)
#: Files of appliance/rootfs in place before the packages are installed: the initramfs made when the kernel
#: package is installed follows them (the disk drivers only, zstd), so it is made once, the appliance's way.
EARLY_FILES = ("etc/initramfs-tools/conf.d/podium.conf", "etc/initramfs-tools/hooks/podium-disks")
#: Documentation and translations left out of the image (copyright files stay).
DPKG_EXCLUDES = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
)
STARTED = time.monotonic()


def say(message: str) -> None:
    print(f"make xva [{time.monotonic() - STARTED:6.1f} s] {message}", flush=True)


def fail(message: str) -> NoReturn:
    print(f"make xva: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(1)


def run(argv: list[str], what: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command (``stdin`` its input); on failure stop with its last lines of output."""
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = "\n".join((done.stderr + done.stdout).strip().splitlines()[-20:])
        fail(f"{what} failed (exit status {done.returncode}):\n{tail}")
    return done


def role_packages() -> list[str]:
    """Every role's ``<role>_packages`` list from provisioning/roles/*/defaults/main.yml, in role order."""
    packages: list[str] = []
    for defaults in sorted((ROOT / "provisioning/roles").glob("*/defaults/main.yml")):
        data: dict[str, object] = yaml.safe_load(defaults.read_text()) or {}
        for name, value in data.items():
            if not name.endswith("_packages"):
                continue
            if not isinstance(value, list):
                fail(f"{defaults.relative_to(ROOT)}: {name} is not a list of packages")
            packages += [str(p) for p in value if p not in packages]
    return packages


def mirrors() -> list[str]:
    debian = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
    security = os.environ.get("DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security")
    return [line.format(debian=debian, security=security) for line in MIRRORS]


def base_key(packages: list[str]) -> str:
    """What the base disk depends on, hashed: its recipe, packages, mirrors and the files it takes."""
    files = {name: (ROOT / "appliance/rootfs" / name).read_text() for name in BASE_FILES + EARLY_FILES}
    inputs = {
        "recipe": BASE_RECIPE,
        "packages": sorted(packages),
        "mirrors": mirrors(),
        "files": files,
        "size": DISK_SIZE,
        "excludes": DPKG_EXCLUDES,
    }
    fingerprint = json.dumps(inputs, sort_keys=True)
    return hashlib.sha256(fingerprint.encode()).hexdigest()[:16]


def early_files_hooks() -> list[str]:
    """mmdebstrap setup hooks that put EARLY_FILES in the empty root before any package is unpacked."""
    hooks = []
    for name in EARLY_FILES:
        folder = "/" + str(Path(name).parent)
        source = ROOT / "appliance/rootfs" / name
        hooks += [f'--setup-hook=mkdir -p "$1{folder}"', f"--setup-hook=copy-in {source} {folder}"]
    return hooks


def make_rootfs(rootfs: Path, packages: list[str], log: Path) -> None:
    """mmdebstrap of bookworm with ``packages`` into ``rootfs``."""
    options = ["--variant=minbase", f"--include={','.join(packages)}", "--components=main"]
    options += ['--aptopt=Acquire::Check-Valid-Until "false"', "--aptopt=Acquire::Retries 3"]
    options += [f"--dpkgopt={rule}" for rule in DPKG_EXCLUDES]
    argv = ["mmdebstrap", *options, *early_files_hooks(), SUITE, str(rootfs), *mirrors()]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, text=True)
        shown = 0
        while proc.poll() is None:
            time.sleep(2)
            lines = [line for line in log.read_text().splitlines() if line.startswith("I: ")]
            for line in lines[shown:]:
                say(f"  mmdebstrap: {line[3:]}")
            shown = len(lines)
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-20:])
        fail(f"mmdebstrap failed (exit status {proc.returncode}); the whole log is {log}:\n{tail}")


def customize(rootfs: Path, fs_uuid: str, public_key: str) -> None:
    """What the base system needs to boot and let the build in: fstab, hostname, DHCP, the build's key."""
    (rootfs / "etc/fstab").write_text(f"UUID={fs_uuid} / ext4 errors=remount-ro 0 1\n")
    (rootfs / "etc/hostname").write_text("podium\n")
    (rootfs / "etc/hosts").write_text(
        "127.0.0.1\tlocalhost\n127.0.1.1\tpodium\n::1\tlocalhost ip6-localhost ip6-loopback\n"
        "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    )
    for name in BASE_FILES:
        dest = rootfs / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "appliance/rootfs" / name, dest)
    ssh = rootfs / "root/.ssh"
    ssh.mkdir(mode=0o700, exist_ok=True)
    (ssh / "authorized_keys").write_text(public_key)
    (ssh / "authorized_keys").chmod(0o600)
    units = ["systemd-networkd.service", "systemd-resolved.service"]
    run(["systemctl", f"--root={rootfs}", "enable", *units], "enabling systemd-networkd in the base system")


def make_disk(rootfs: Path, disk: Path, fs_uuid: str) -> None:
    """A sparse raw disk: an MBR table with one bootable Linux partition at 1 MiB holding ``rootfs``."""
    with disk.open("wb") as f:
        f.truncate(DISK_SIZE)
    table = f"label: dos\nstart={PARTITION_OFFSET // 512}, type=83, bootable\n"
    run(["sfdisk", "--quiet", str(disk)], "writing the partition table", stdin=table)
    blocks = (DISK_SIZE - PARTITION_OFFSET) // 4096
    mke2fs = ["mke2fs", "-q", "-F", "-t", "ext4", "-b", "4096", "-L", "podium-root", "-U", fs_uuid]
    mke2fs += ["-d", str(rootfs), "-E", f"offset={PARTITION_OFFSET}", str(disk), str(blocks)]
    run(mke2fs, "making the root file system")


def base_disk(cache: Path) -> Path:
    """The base disk's folder (disk.raw, vmlinuz, initrd.img, build_key), made once per inputs."""
    packages = role_packages()
    folder = cache / f"base-{base_key(packages)}"
    if (folder / "complete").is_file():
        say(f"base disk: reusing {folder.relative_to(ROOT)} (its inputs are unchanged)")
        return folder
    say(f"base disk: Debian {SUITE} with {len(packages)} packages (mmdebstrap, about 2 minutes)")
    cache.mkdir(parents=True, exist_ok=True)
    for old in cache.glob("base-*"):
        shutil.rmtree(old, ignore_errors=True)
    partial = cache / f".base-partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir()
    try:
        rootfs = partial / "rootfs"
        make_rootfs(rootfs, packages, partial / "mmdebstrap.log")
        keygen = ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "podium-image-build"]
        run([*keygen, "-f", str(partial / "build_key")], "making the build's SSH key")
        fs_uuid = str(uuid.uuid4())
        customize(rootfs, fs_uuid, (partial / "build_key.pub").read_text())
        for name in ("vmlinuz", "initrd.img"):
            (found,) = sorted((rootfs / "boot").glob(f"{name}-*"))[-1:]
            shutil.copyfile(found, partial / name)
        say("base disk: making the 20 GiB sparse disk (mke2fs -d), kept as qcow2")
        raw, qcow2 = partial / "disk.raw", partial / "disk.qcow2"
        make_disk(rootfs, raw, fs_uuid)
        shutil.rmtree(rootfs)
        # qcow2: Packer copies a raw disk byte for byte (20 GiB); a qcow2 becomes the backing file of the
        # build's disk, nothing copied
        run(["qemu-img", "convert", "-O", "qcow2", str(raw), str(qcow2)], "converting the base disk to qcow2")
        raw.unlink()
        (partial / "complete").write_text(json.dumps({"packages": packages, "uuid": fs_uuid}) + "\n")
        partial.rename(folder)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    say(f"base disk: {folder.relative_to(ROOT)} ({used_mib(folder / 'disk.qcow2')} MiB)")
    return folder


def used_mib(path: Path) -> int:
    return path.stat().st_blocks * 512 // 1024**2


def kvm_boots(base: Path, deadline: float = 30.0) -> bool:
    """Whether qemu with KVM boots the base kernel to its init here (it can hang or abort in nested setups)."""
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return False
    machine = ["-accel", "kvm", "-m", "512", "-nographic", "-no-reboot", "-nodefaults", "-serial", "stdio"]
    kernel = ["-kernel", str(base / "vmlinuz"), "-initrd", str(base / "initrd.img")]
    drive = f"file={base / 'disk.qcow2'},format=qcow2,if=virtio,readonly=on"
    cmdline = "root=/dev/vda1 ro console=ttyS0 init=/bin/true panic=-1"
    argv = ["qemu-system-x86_64", *machine, *kernel, "-drive", drive, "-append", cmdline]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=deadline, check=False)
    except subprocess.TimeoutExpired:
        return False
    return "Run /bin/true as init process" in done.stdout


def accelerator(choice: str, base: Path) -> str:
    if choice != "auto":
        return choice
    say("accelerator: trying kvm (a kernel must boot with it)")
    chosen = "kvm" if kvm_boots(base) else "tcg"
    say(f"accelerator: {chosen}" + ("" if chosen == "kvm" else " (software emulation: slower)"))
    return chosen


_SHOWN = re.compile(r"==> |TASK \[|PLAY RECAP|ok=\d+|podium-build:|Provisioning with|Gracefully halting")


def packer(variables: dict[str, str | list[str]], log: Path) -> None:
    """packer build image/packer, its progress shown, its whole output in ``log``."""
    var_file = log.with_name("variables.pkrvars.json")
    var_file.write_text(json.dumps(variables, indent=1) + "\n")
    env = {
        **os.environ,
        "CHECKPOINT_DISABLE": "1",
        "PACKER_NO_COLOR": "1",
        "PACKER_CACHE_DIR": str(log.parent / "packer_cache"),
        "PACKER_CONFIG_DIR": str(log.parent),
    }
    options = ["-force", "-color=false", "-timestamp-ui", f"-var-file={var_file}"]
    argv = ["packer", "build", *options, str(ROOT / "image/packer")]
    with log.open("w") as out:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        assert proc.stdout is not None
        for line in proc.stdout:
            out.write(line)
            out.flush()
            if _SHOWN.search(line):
                text = line.split(": ", 1)[-1].strip() if "qemu.appliance" in line else line.strip()
                say(f"  packer: {text}")
        proc.wait()
    if proc.returncode != 0:
        tail = "\n".join(log.read_text().strip().splitlines()[-25:])
        fail(f"packer failed (exit status {proc.returncode}); the whole log is {log}:\n{tail}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--keyring", type=Path, required=True)
    accel_default = os.environ.get("PODIUM_ACCEL", "auto")
    parser.add_argument("--accelerator", choices=["auto", "kvm", "tcg"], default=accel_default)
    parser.add_argument("--compression", choices=["gzip", "zstd", "none"], default="gzip")
    parser.add_argument("--out", type=Path, default=ROOT / "build")
    args = parser.parse_args()
    for tool in ("mmdebstrap", "mke2fs", "sfdisk", "qemu-system-x86_64", "qemu-img", "packer"):
        if shutil.which(tool) is None:
            fail(f"{tool} is not installed (make xva installs it: run it through make)")
    if os.geteuid() != 0:
        fail("mmdebstrap needs root here (run make xva as root)")
    bundle, keyring = args.bundle.resolve(), args.keyring.resolve()
    version = read_manifest(bundle).version
    work = (args.out / "image").resolve()
    work.mkdir(parents=True, exist_ok=True)
    xva = (args.out / f"podium-appliance-{version}.xva").resolve()
    say(f"building {xva.relative_to(ROOT) if xva.is_relative_to(ROOT) else xva} from {bundle.name}")
    base_reused = (work / f"base-{base_key(role_packages())}" / "complete").is_file()
    base = base_disk(work)
    accel = accelerator(args.accelerator, base)
    (work / "accelerator").write_text(accel + "\n")  # make image-test boots the image with the same
    venv_bin = Path(sys.executable).parent
    output = work / "packer-output"
    shutil.rmtree(output, ignore_errors=True)
    # The build's disk: a qcow2 over the cached base disk (Packer 1.6's own backing-file option omits the
    # backing format, which qemu 7 requires), which Packer copies into its output folder.
    overlay = work / "overlay.qcow2"
    overlay.unlink(missing_ok=True)
    create = ["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(base / "disk.qcow2")]
    run([*create, str(overlay)], "making the build's disk over the base disk")
    with tempfile.TemporaryDirectory(prefix="podium-xva-") as tmp:
        key = Path(tmp) / "build_key"  # ssh refuses a key file readable by others: a private copy
        shutil.copyfile(base / "build_key", key)
        key.chmod(0o600)
        pack = [sys.executable, str(ROOT / "image/pack_xva.py"), str(output / "disk.qcow2"), str(xva)]
        pack += ["--version", version, "--compression", args.compression]
        variables: dict[str, str | list[str]] = {
            "version": version,
            "base_disk": str(overlay),
            "kernel": str(base / "vmlinuz"),
            "initrd": str(base / "initrd.img"),
            "ssh_private_key_file": str(key),
            "accelerator": accel,
            "output_directory": str(output),
            "serial_log": str(work / "serial.log"),
            "ansible_playbook": str(venv_bin / "ansible-playbook"),
            "ansible_config": str(ROOT / "provisioning/ansible.cfg"),
            "playbook": str(ROOT / "provisioning/site.yml"),
            "bundle": str(bundle),
            "keyring": str(keyring),
            "finish_script": str(ROOT / "image/finish.sh"),
            "pack_command": pack,
        }
        say(f"packer: provisioning under {accel} (Ansible's tasks follow)")
        packer(variables, work / "packer.log")
    shutil.rmtree(output, ignore_errors=True)
    overlay.unlink(missing_ok=True)
    size = xva.stat().st_size / 1024**2
    timings = {
        "seconds": round(time.monotonic() - STARTED, 1),
        "accelerator": accel,
        "xva": xva.name,
        "xva_mib": round(size, 1),
        "base_reused": base_reused,
        "at": time.time(),
    }
    (work / "timings.json").write_text(json.dumps(timings, indent=1) + "\n")  # tests/bench/bench_image.py
    say(f"done: {xva} ({size:.0f} MiB) and {xva.name}.sha256")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
