"""Installing certificates: the self-signed one made at first boot, the pair written key first and put back,
a broken pair repaired at boot and kept aside, and an uploaded pair installed only as nginx accepts it."""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import stat
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from podium_appliance.box import addresses, tls_install
from podium_appliance.box.tls_check import TlsError, installed_problem, read_info, validate
from podium_appliance.errors import ApplianceError
from podium_appliance.layout import Layout, write_atomic

from ..pki import NOW, Pki, broken_pairs, key_pem, p256, pem
from .conftest import configure, log_of

# generate_self_signed


def test_generate_self_signed_round_trip() -> None:
    cert_pem, key = tls_install.generate_self_signed(
        "podium.example.com", ["192.0.2.2", "fd00::2"], days=90, now=NOW
    )
    info = validate(cert_pem, key, now=NOW + timedelta(days=1))
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert info.names == ["podium.example.com", "podium", "192.0.2.2", "fd00::2"]
    assert info.subject == "CN=podium.example.com" and info.issuer == info.subject
    assert info.not_before == NOW - timedelta(hours=1)
    assert info.not_after == NOW + timedelta(days=90)
    assert info.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert info.self_signed and info.chain_length == 1
    assert any("self-signed" in w for w in info.warnings)


def test_generate_self_signed_extensions() -> None:
    cert_pem, key = tls_install.generate_self_signed("podium", ["192.0.2.2", "fd00::2", "192.0.2.2"], now=NOW)
    cert = x509.load_pem_x509_certificate(cert_pem)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["podium"]
    assert san.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("192.0.2.2"),
        ipaddress.ip_address("fd00::2"),
    ]
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and not constraints.value.ca
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    assert cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey)
    assert cert.public_key().curve.name == "secp256r1"  # type: ignore[union-attr]
    assert key.startswith(b"-----BEGIN PRIVATE KEY-----")
    # Apple's limit is on the whole validity period, the hour of clock skew included
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(days=825)


def test_generate_self_signed_serials_differ() -> None:
    first = x509.load_pem_x509_certificate(tls_install.generate_self_signed("podium", [])[0])
    second = x509.load_pem_x509_certificate(tls_install.generate_self_signed("podium", [])[0])
    assert first.serial_number != second.serial_number


def test_generate_self_signed_long_hostname_fits_the_cn() -> None:
    hostname = "podium." + ".".join(["sub"] * 20) + ".example.com"
    cert = x509.load_pem_x509_certificate(tls_install.generate_self_signed(hostname, [])[0])
    assert cert.subject.rfc4514_string() == "CN=podium"
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert hostname in san.get_values_for_type(x509.DNSName)


@pytest.mark.parametrize(
    ("hostname", "addresses", "days"),
    [
        ("", [], 30),
        ("bad_name", [], 30),
        ("-podium", [], 30),
        ("podium", ["not-an-ip"], 30),
        ("podium", [], 900),
    ],
)
def test_generate_self_signed_refuses_bad_input(hostname: str, addresses: list[str], days: int) -> None:
    with pytest.raises(TlsError):
        tls_install.generate_self_signed(hostname, addresses, days=days)


def test_generate_self_signed_openssl_parses() -> None:
    cert_pem, key = tls_install.generate_self_signed("podium.example.com", ["192.0.2.2"], now=NOW)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    text = subprocess.run(
        [openssl, "x509", "-noout", "-text"], input=cert_pem, capture_output=True, check=True
    ).stdout.decode()
    assert "DNS:podium.example.com" in text and "IP Address:192.0.2.2" in text
    assert "CA:FALSE" in text and "TLS Web Server Authentication" in text
    subprocess.run([openssl, "pkey", "-noout"], input=key, capture_output=True, check=True)


# ensure_certificate, write_pair, restore_pair


def mode(path: Path) -> int:
    """A file's permission bits."""
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_certificate_writes_once(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    made = tls_install.ensure_certificate(layout, "podium", ["192.0.2.2"])
    assert made and made.problem == "" and made.kept == ()
    assert mode(layout.tls_key) == 0o600 and mode(layout.tls_cert) == 0o644
    cert, key = layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()
    assert validate(cert, key).names == ["podium", "192.0.2.2"]
    assert not tls_install.ensure_certificate(layout, "other", [])
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == (cert, key)
    assert sorted(p.name for p in layout.tls_dir.iterdir()) == ["podium.crt", "podium.key"]


def test_ensure_certificate_never_replaces_a_usable_uploaded_pair(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    pki = Pki(names=["elsewhere.example.com"])  # names another host, expires in 300 days: still served
    cert, key = pem(pki.leaf) + pem(pki.inter), pki.key()
    tls_install.write_pair(layout, cert, key)
    for moment in (NOW, NOW + timedelta(days=299), NOW - timedelta(days=3650)):  # a clock far behind too
        assert installed_problem(layout, moment) is None
        assert not tls_install.ensure_certificate(layout, "podium", [], now=moment)
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == (cert, key)
    assert sorted(p.name for p in layout.tls_dir.iterdir()) == ["podium.crt", "podium.key"]


@pytest.mark.parametrize("case", list(broken_pairs()))
def test_ensure_certificate_repairs_a_broken_pair_and_keeps_it_aside(tmp_path: Path, case: str) -> None:
    layout = Layout(tmp_path)
    cert, key, problem = broken_pairs()[case]
    layout.tls_dir.mkdir(parents=True)
    layout.tls_cert.write_bytes(cert)
    layout.tls_key.write_bytes(key)
    layout.tls_cert.chmod(0o640)
    layout.tls_key.chmod(0o600)
    moment = NOW + timedelta(days=400) if case == "expired" else NOW
    assert problem in (installed_problem(layout, moment) or "")
    done = tls_install.ensure_certificate(layout, "podium", ["192.0.2.2"], now=moment)
    assert done and problem in done.problem
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    assert [p.name for p in done.kept] == [f"podium.crt.broken-{stamp}", f"podium.key.broken-{stamp}"]
    old_cert, old_key = done.kept
    assert (old_cert.read_bytes(), old_key.read_bytes()) == (cert, key)
    assert mode(old_cert) == 0o640 and mode(old_key) == 0o600  # modes kept
    assert mode(layout.tls_key) == 0o600 and mode(layout.tls_cert) == 0o644
    info = validate(layout.tls_cert.read_bytes(), layout.tls_key.read_bytes(), now=moment)
    assert info.self_signed and info.names == ["podium", "192.0.2.2"]
    assert installed_problem(layout, moment) is None
    assert not tls_install.ensure_certificate(layout, "podium", [], now=moment)  # the next boot leaves it


def test_ensure_certificate_a_key_put_aside_is_never_wider_than_0600(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.tls_dir.mkdir(parents=True)
    layout.tls_cert.write_bytes(b"junk")
    layout.tls_key.write_bytes(key_pem(p256()))
    layout.tls_key.chmod(0o644)
    done = tls_install.ensure_certificate(layout, "podium", [], now=NOW)
    assert mode(done.kept[1]) == 0o600 and mode(done.kept[0]) == 0o644
    # A second repair within the same second does not overwrite the first one's files.
    layout.tls_key.write_bytes(key_pem(p256()))
    again = tls_install.ensure_certificate(layout, "podium", [], now=NOW)
    assert [p.name for p in again.kept] == [f"{p.name}-2" for p in done.kept]
    assert all(p.exists() for p in done.kept)


def test_ensure_certificate_replaces_a_lone_certificate(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.tls_dir.mkdir(parents=True)
    layout.tls_cert.write_bytes(b"a certificate whose key was lost")
    done = tls_install.ensure_certificate(layout, "podium", [], now=NOW)
    assert done and "the key podium.key is missing" in done.problem
    assert [p.read_bytes() for p in done.kept] == [b"a certificate whose key was lost"]
    validate(layout.tls_cert.read_bytes(), layout.tls_key.read_bytes())


def test_write_pair_restore_pair_round_trip(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    first = tls_install.generate_self_signed("first", [])
    second = tls_install.generate_self_signed("second", [])
    assert tls_install.write_pair(layout, *first) is None
    previous = tls_install.write_pair(layout, *second)
    assert previous == first
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == second
    assert mode(layout.tls_key) == 0o600
    tls_install.restore_pair(layout, previous)
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == first
    assert mode(layout.tls_key) == 0o600 and mode(layout.tls_cert) == 0o644
    tls_install.restore_pair(layout, None)
    assert not layout.tls_cert.exists() and not layout.tls_key.exists()


def test_write_pair_undoes_the_key_when_the_certificate_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path)
    first = tls_install.generate_self_signed("first", [])
    tls_install.write_pair(layout, *first)
    failures = iter([OSError(28, "No space left on device")])

    def failing_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
        if path == layout.tls_cert and (failure := next(failures, None)):
            raise failure
        write_atomic(path, data, mode)

    monkeypatch.setattr(tls_install, "write_atomic", failing_write)
    with pytest.raises(TlsError, match=r"cannot write .*No space left"):
        tls_install.write_pair(layout, *tls_install.generate_self_signed("second", []))
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == first


# The first boot's certificate


def test_the_first_boot_waits_for_the_first_address_for_its_certificate(
    appliance: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([[], [], ["192.0.2.7"]])  # DHCP answers on the third look
    monkeypatch.setattr(addresses, "local_addresses", lambda: next(answers))
    assert tls_install.ensure_certificate(appliance, "podium", address_wait=5.0)
    names = read_info(appliance.tls_cert).names
    assert "192.0.2.7" in names and next(answers, None) is None


# An uploaded pair, installed as nginx accepts it


def test_install_validates_writes_tests_and_reloads(layout, pair):
    info = tls_install.install(layout, configure(layout), *pair, hostname="podium.example.net")
    assert info.names == ["podium.example.net", "podium", "127.0.0.1"]
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == pair
    assert log_of(layout) == ["test", "reload"]


def test_an_invalid_pair_writes_and_runs_nothing(layout, pair):
    other_cert, _other_key = tls_install.generate_self_signed("other.example.net", [])
    with pytest.raises(TlsError, match="does not belong"):
        tls_install.install(layout, configure(layout), other_cert, pair[1])
    assert not layout.tls_cert.exists() and not layout.tls_key.exists()
    assert log_of(layout) == []


def test_a_certificate_nginx_refuses_is_taken_back(layout, pair):
    tls_install.install(layout, configure(layout), *pair)
    new = tls_install.generate_self_signed("podium.example.net", [])
    with pytest.raises(ApplianceError):
        tls_install.install(layout, configure(layout, test=["false"]), *new)
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == pair
    assert log_of(layout) == ["test", "reload"]


def test_a_refused_first_certificate_leaves_none(layout, pair):
    with pytest.raises(ApplianceError):
        tls_install.install(layout, configure(layout, test=["false"]), *pair)
    assert not layout.tls_cert.exists() and not layout.tls_key.exists()
