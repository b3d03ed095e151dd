"""``podium`` when the server's certificate is not trusted or changes, and when a pool dies mid-download."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..harness.cliproc import PODIUM, certificate, config_of, environ, fingerprint, ok, podium, wait_seen
from ..harness.serverproc import ADMIN_EMAIL, ADMIN_PASSWORD, free_port, start_server
from ..harness.simdisks import MiB, guest_with_disk, put_raw
from ..harness.simproc import BUNDLED_DB, jsonrpc, start_sim
from ..harness.simproc import master_session as login

pytestmark = pytest.mark.integration


def test_certificates_untrusted_pinned_changed_and_verified(tmp_path: Path) -> None:
    self_signed, _key, cert, _ = certificate(tmp_path, "self-signed")
    port = free_port()
    server = start_server(tmp_path / "data", tls=(self_signed, _key), port=port)
    url = server.url
    try:
        r = podium("register", url, ADMIN_EMAIL, ADMIN_PASSWORD, home=tmp_path)
        assert r.returncode == 3 and "is not trusted: self-signed certificate" in r.stderr
        assert fingerprint(cert) in r.stderr and "--au" in r.stderr and not (tmp_path / "podium").exists()
        r = podium("register", "--au", url, ADMIN_EMAIL, ADMIN_PASSWORD, home=tmp_path)
        assert r.returncode == 0 and fingerprint(cert) in r.stderr
        assert config_of(tmp_path)["fingerprint"] == fingerprint(cert)
        ok("session.getUser", home=tmp_path)
    finally:
        server.stop()

    # The same address now presents another certificate, issued by a CA this machine does not know yet.
    ca_pem, _, ca, ca_key = certificate(tmp_path, "ca", ca=True)
    leaf, leaf_key, other, _ = certificate(tmp_path, "leaf", issuer=(ca, ca_key))
    server = start_server(tmp_path / "data", tls=(leaf, leaf_key), port=port)
    try:
        r = podium("session.getUser", home=tmp_path)
        assert r.returncode == 3 and "changed since you registered" in r.stderr
        assert fingerprint(cert) in r.stderr and fingerprint(other) in r.stderr
        assert podium("--au", "session.getUser", home=tmp_path).returncode == 0  # accept anything, once
        # Trusting the CA (as a company does), the certificate verifies: nothing pinned.
        ok("register", url, ADMIN_EMAIL, ADMIN_PASSWORD, home=tmp_path, SSL_CERT_FILE=str(ca_pem))
        assert "fingerprint" not in config_of(tmp_path)
        ok("session.getUser", home=tmp_path, SSL_CERT_FILE=str(ca_pem))
        r = podium("session.getUser", home=tmp_path)
        assert r.returncode == 3 and "not trusted" in r.stderr  # without the CA, verification fails again
    finally:
        server.stop()


def test_plain_http_server_and_wrong_scheme(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data")
    try:
        r = podium(
            "register", server.url.replace("http:", "https:"), ADMIN_EMAIL, ADMIN_PASSWORD, home=tmp_path
        )
        assert r.returncode == 3 and "TLS with 127.0.0.1" in r.stderr
        r = podium("register", server.url + "/nowhere/", ADMIN_EMAIL, ADMIN_PASSWORD, home=tmp_path)
        assert r.returncode == 3 and "HTTP 404" in r.stderr
    finally:
        server.stop()


def test_download_cut_midway_says_so_and_keeps_nothing(tmp_path: Path) -> None:
    sim = start_sim("--db", str(BUNDLED_DB), "--op-seconds", "0.01")
    server = start_server(tmp_path / "data")
    home = tmp_path / "home"
    try:
        ok("register", server.url, ADMIN_EMAIL, ADMIN_PASSWORD, home=home)
        master = sim.master(0)
        ok("server.add", f"host={master.url}", f"username={sim.user}", f"password={sim.password}", home=home)
        url, s = login(sim)
        vm_ref, vdi, _rec = guest_with_disk(url, s, size=64 * MiB)
        put_raw(url, s, vdi, os.urandom(64 * MiB))  # incompressible, no holes: a long stream
        vm = jsonrpc(url, "VM.get_uuid", s, vm_ref)
        wait_seen(home, vm)
        out = tmp_path / "out"
        out.mkdir()
        (out / "vm.xva").write_bytes(b"an older export, kept")
        proc = subprocess.Popen(
            [str(PODIUM), "vm.export", f"vm={vm}", f"@={out}/vm.xva"],
            stderr=subprocess.PIPE,
            text=True,
            env=environ(home),
        )
        for _ in range(200):  # once the download is under way, freeze the client: the stream stalls
            parts = list(out.glob(".*.part"))
            if parts and parts[0].stat().st_size > 4 * MiB:
                break
            time.sleep(0.01)
        proc.send_signal(signal.SIGSTOP)
        sim.ctl("POST", f"/pools/0/hosts/{master.name}/stop")  # the pool master goes away mid-export
        time.sleep(1)
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 3 and "the download was cut after" in err and "nothing was kept" in err, err
        assert sorted(p.name for p in out.iterdir()) == ["vm.xva"]
        assert (out / "vm.xva").read_bytes() == b"an older export, kept"
    finally:
        server.stop()
        sim.stop()
