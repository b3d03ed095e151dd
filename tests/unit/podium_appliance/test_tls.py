"""The HTTPS certificate: generation, the checks on an uploaded chain and key, installation and rollback."""

from __future__ import annotations

import hashlib
import html
import ipaddress
import re
import shutil
import stat
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from podium_appliance import addresses, tls
from podium_appliance.errors import ApplianceError
from podium_appliance.layout import Layout, write_atomic

from ...harness.applianceproc import wizard_client

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


def pem(cert: x509.Certificate) -> bytes:
    """A certificate in PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def key_pem(key: PrivateKey, password: bytes | None = None) -> bytes:
    """A private key in PEM (PKCS#8), encrypted when a password is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def make_cert(
    cn: str,
    key: PrivateKey,
    issuer: tuple[str, PrivateKey] | None = None,
    *,
    ca: bool = False,
    names: list[str] | None = None,
    not_before: datetime = NOW - timedelta(days=10),
    not_after: datetime = NOW + timedelta(days=300),
) -> x509.Certificate:
    """A certificate for ``key``, signed by ``issuer`` (its CN and key), self-signed without one."""
    issuer_cn, signer = issuer or (cn, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names is not None:
        san = x509.SubjectAlternativeName([x509.DNSName(n) for n in names])
        builder = builder.add_extension(san, critical=False)
    return builder.sign(signer, hashes.SHA256())


def p256() -> ec.EllipticCurvePrivateKey:
    """A new P-256 key."""
    return ec.generate_private_key(ec.SECP256R1())


class Pki:
    """A root CA, an intermediate it signed, and a server certificate the intermediate signed."""

    def __init__(self, names: list[str] | None = None) -> None:
        self.root_key, self.inter_key, self.leaf_key = p256(), p256(), p256()
        self.root = make_cert("Test Root", self.root_key, ca=True)
        self.inter = make_cert("Test Intermediate", self.inter_key, ("Test Root", self.root_key), ca=True)
        leaf_names = names if names is not None else ["podium.example.com"]
        self.leaf = make_cert(
            "podium.example.com", self.leaf_key, ("Test Intermediate", self.inter_key), names=leaf_names
        )

    def key(self) -> bytes:
        """The leaf's key in PEM."""
        return key_pem(self.leaf_key)


def message(cert: bytes, key: bytes, hostname: str | None = None) -> str:
    """The message validate refuses the pair with."""
    with pytest.raises(tls.TlsError) as caught:
        tls.validate(cert, key, now=NOW, hostname=hostname)
    return caught.value.message


# generate_self_signed


def test_generate_self_signed_round_trip() -> None:
    cert_pem, key = tls.generate_self_signed("podium.example.com", ["192.0.2.2", "fd00::2"], days=90, now=NOW)
    info = tls.validate(cert_pem, key, now=NOW + timedelta(days=1))
    der = x509.load_pem_x509_certificate(cert_pem).public_bytes(serialization.Encoding.DER)
    assert info.names == ["podium.example.com", "podium", "192.0.2.2", "fd00::2"]
    assert info.subject == "CN=podium.example.com" and info.issuer == info.subject
    assert info.not_before == NOW - timedelta(hours=1)
    assert info.not_after == NOW + timedelta(days=90)
    assert info.fingerprint == ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())
    assert info.self_signed and info.chain_length == 1
    assert any("self-signed" in w for w in info.warnings)


def test_generate_self_signed_extensions() -> None:
    cert_pem, key = tls.generate_self_signed("podium", ["192.0.2.2", "fd00::2", "192.0.2.2"], now=NOW)
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
    first = x509.load_pem_x509_certificate(tls.generate_self_signed("podium", [])[0])
    second = x509.load_pem_x509_certificate(tls.generate_self_signed("podium", [])[0])
    assert first.serial_number != second.serial_number


def test_generate_self_signed_long_hostname_fits_the_cn() -> None:
    hostname = "podium." + ".".join(["sub"] * 20) + ".example.com"
    cert = x509.load_pem_x509_certificate(tls.generate_self_signed(hostname, [])[0])
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
    with pytest.raises(tls.TlsError):
        tls.generate_self_signed(hostname, addresses, days=days)


def test_generate_self_signed_openssl_parses() -> None:
    cert_pem, key = tls.generate_self_signed("podium.example.com", ["192.0.2.2"], now=NOW)
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    text = subprocess.run(
        [openssl, "x509", "-noout", "-text"], input=cert_pem, capture_output=True, check=True
    ).stdout.decode()
    assert "DNS:podium.example.com" in text and "IP Address:192.0.2.2" in text
    assert "CA:FALSE" in text and "TLS Web Server Authentication" in text
    subprocess.run([openssl, "pkey", "-noout"], input=key, capture_output=True, check=True)


# validate


def test_validate_refuses_key_mismatch() -> None:
    pki = Pki()
    text = message(pem(pki.leaf) + pem(pki.inter), key_pem(p256()))
    assert "does not belong to the certificate" in text and "upload the key" in text


def test_validate_refuses_expired_leaf() -> None:
    cert, key = tls.generate_self_signed("podium", [], days=30, now=NOW - timedelta(days=60))
    text = message(cert, key)
    expired_on = (NOW - timedelta(days=30)).strftime("%Y-%m-%d")
    assert "expired on" in text and expired_on in text and "renew" in text


def test_validate_refuses_not_yet_valid_leaf() -> None:
    cert, key = tls.generate_self_signed("podium", [], now=NOW + timedelta(days=2))
    assert "not valid yet" in message(cert, key)


def test_validate_refuses_expired_intermediate() -> None:
    pki = Pki()
    old = make_cert(
        "Test Intermediate",
        pki.inter_key,
        ("Test Root", pki.root_key),
        ca=True,
        not_after=NOW - timedelta(days=1),
    )
    text = message(pem(pki.leaf) + pem(old), pki.key())
    assert "certificate 2" in text and "CN=Test Intermediate" in text and "expired" in text


def test_validate_refuses_wrong_chain_order() -> None:
    pki = Pki()
    text = message(pem(pki.leaf) + pem(pki.root) + pem(pki.inter), pki.key())
    assert (
        "certificate 1 (CN=podium.example.com) was not issued by certificate 2 (CN=Test Root)"
        " but by certificate 3 (CN=Test Intermediate)" in text
    )
    assert "put the leaf first" in text


def test_validate_refuses_wrong_order_further_down() -> None:
    pki = Pki()
    other_key = p256()
    other = make_cert("Other CA", other_key, ca=True)
    text = message(pem(pki.leaf) + pem(pki.inter) + pem(other) + pem(pki.root), pki.key())
    assert "certificate 2 (CN=Test Intermediate) was not issued by certificate 3 (CN=Other CA)" in text
    assert "but by certificate 4 (CN=Test Root)" in text


def test_validate_refuses_missing_intermediate_between() -> None:
    pki = Pki()
    text = message(pem(pki.leaf) + pem(pki.root), pki.key())
    assert "certificate 1 (CN=podium.example.com) was not issued by certificate 2 (CN=Test Root)" in text
    assert "its issuer, CN=Test Intermediate, is not in the file" in text


def test_validate_refuses_issuer_with_same_name_other_key() -> None:
    pki = Pki()
    impostor = make_cert("Test Intermediate", p256(), ("Test Root", pki.root_key), ca=True)
    text = message(pem(pki.leaf) + pem(impostor), pki.key())
    assert "signature does not verify" in text and "certificate 2" in text


@pytest.mark.parametrize("with_root", [False, True])
def test_validate_accepts_chain_in_order(with_root: bool) -> None:
    pki = Pki()
    chain = pem(pki.leaf) + pem(pki.inter) + (pem(pki.root) if with_root else b"")
    info = tls.validate(chain, pki.key(), now=NOW, hostname="podium.example.com")
    assert info.chain_length == (3 if with_root else 2)
    assert info.issuer == "CN=Test Intermediate" and not info.self_signed
    assert info.warnings == []


def test_validate_accepts_crlf_and_text_around_blocks() -> None:
    pki = Pki()
    chain = b"Subject: podium\r\n" + (pem(pki.leaf) + pem(pki.inter)).replace(b"\n", b"\r\n")
    assert tls.validate(chain, pki.key(), now=NOW).chain_length == 2


def test_validate_refuses_encrypted_key() -> None:
    pki = Pki()
    cert = pem(pki.leaf) + pem(pki.inter)
    assert "openssl pkey -in key.pem -out plain.pem" in message(cert, key_pem(pki.leaf_key, b"secret"))
    legacy = pki.leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.BestAvailableEncryption(b"secret"),
    )
    assert "passphrase" in message(cert, legacy)


@pytest.mark.parametrize(
    ("cert", "expected"),
    [
        (b"", "file is empty"),
        (b" \n", "file is empty"),
        (b"garbage", "not in PEM format"),
        (b"\x30\x82\x01\x0a\x02\x82", "not in PEM format"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "holds no certificate"),
        (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "damaged"),
    ],
)
def test_validate_refuses_garbage_certificate(cert: bytes, expected: str) -> None:
    assert expected in message(cert, key_pem(p256()))


def test_validate_refuses_garbage_key() -> None:
    pki = Pki()
    cert = pem(pki.leaf) + pem(pki.inter)
    assert "not a PEM private key" in message(cert, b"garbage")
    assert "key file is empty" in message(cert, b"")
    assert "cannot be read" in message(
        cert, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )


def test_validate_refuses_swapped_files() -> None:
    pki = Pki()
    assert "swapped" in message(pki.key(), pem(pki.leaf))


def test_validate_refuses_key_inside_certificate_file() -> None:
    pki = Pki()
    assert "also holds a private key" in message(pem(pki.leaf) + pki.key(), pki.key())


def test_validate_refuses_ca_leaf() -> None:
    pki = Pki()
    text = message(pem(pki.inter) + pem(pki.root), key_pem(pki.inter_key))
    assert "certificate authority" in text and "CN=Test Intermediate" in text


def test_validate_refuses_short_rsa_key() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    text = message(pem(make_cert("podium", key, names=["podium"])), key_pem(key))
    assert "1024 bits" in text and "2048" in text


def test_validate_accepts_rsa_2048() -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    info = tls.validate(pem(make_cert("podium", key, names=["podium"])), key_pem(key), now=NOW)
    assert info.self_signed


def test_validate_refuses_unsupported_curve() -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    text = message(pem(make_cert("podium", key, names=["podium"])), key_pem(key))
    assert "secp521r1" in text and "P-256" in text


def test_validate_warns_hostname_not_covered() -> None:
    pki = Pki()
    info = tls.validate(pem(pki.leaf) + pem(pki.inter), pki.key(), now=NOW, hostname="other.example.com")
    assert len(info.warnings) == 1
    assert "does not name other.example.com" in info.warnings[0]


def test_validate_wildcard_covers_one_label() -> None:
    pki = Pki(names=["*.example.com"])
    chain, key = pem(pki.leaf) + pem(pki.inter), pki.key()
    assert tls.validate(chain, key, now=NOW, hostname="podium.example.com").warnings == []
    assert tls.validate(chain, key, now=NOW, hostname="a.b.example.com").warnings
    assert tls.validate(chain, key, now=NOW, hostname="example.com").warnings


def test_address_warnings_name_the_addresses_not_covered() -> None:
    (only,) = tls.address_warnings(["podium.example.com", "192.0.2.2"], ["192.0.2.2", "2001:db8::2"])
    assert "the appliance's address 2001:db8::2: browsers opening https://[2001:db8::2]/" in only
    assert tls.address_warnings(["podium", "192.0.2.2"], ["192.0.2.2"]) == []
    assert tls.address_warnings([], ["192.0.2.2"]) == []  # no names at all: a warning of its own


@pytest.mark.parametrize(
    ("names", "hostname", "covered"),
    [
        (["*.example.com"], "PODIUM.Example.com.", True),
        (["*.example.com"], "example.com", False),
        (["*.example.com"], "a.b.example.com", False),
        (["podium"], "podium", True),
        (["192.0.2.2"], "192.0.2.2", True),
        (["fd00::2"], "fd00:0::2", True),
        (["*.example.com"], "192.0.2.2", False),
    ],
)
def test_covers_names(names: list[str], hostname: str, covered: bool) -> None:
    assert tls.covers(names, hostname) is covered


def test_validate_warns_expiring_soon() -> None:
    cert, key = tls.generate_self_signed("podium", [], days=20, now=NOW)
    info = tls.validate(cert, key, now=NOW)
    assert any("expires on" in w and "renew it soon" in w for w in info.warnings)


def test_validate_warns_without_subject_alternative_name() -> None:
    key = p256()
    info = tls.validate(pem(make_cert("podium", key)), key_pem(key), now=NOW)
    assert info.names == [] and any("no Subject Alternative Name" in w for w in info.warnings)


def test_tls_error_is_an_appliance_error() -> None:
    assert issubclass(tls.TlsError, ApplianceError)


# read_info


def test_read_info_installed_certificate(tmp_path: Path) -> None:
    pki = Pki()
    path = tmp_path / "podium.crt"
    path.write_bytes(pem(pki.leaf) + pem(pki.inter))
    info = tls.read_info(path)
    assert info.subject == "CN=podium.example.com" and info.chain_length == 2
    assert info.not_after == NOW + timedelta(days=300)


def test_read_info_warns_expired(tmp_path: Path) -> None:
    path = tmp_path / "podium.crt"
    path.write_bytes(tls.generate_self_signed("podium", [], days=1, now=datetime(2020, 1, 1, tzinfo=UTC))[0])
    assert any("expired on 2020-01-02" in w for w in tls.read_info(path).warnings)


def test_read_info_missing_file(tmp_path: Path) -> None:
    with pytest.raises(tls.TlsError, match="cannot read the certificate"):
        tls.read_info(tmp_path / "absent.crt")


# ensure_certificate, write_pair, restore_pair


def mode(path: Path) -> int:
    """A file's permission bits."""
    return stat.S_IMODE(path.stat().st_mode)


def test_ensure_certificate_writes_once(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    made = tls.ensure_certificate(layout, "podium", ["192.0.2.2"])
    assert made and made.problem == "" and made.kept == ()
    assert mode(layout.tls_key) == 0o600 and mode(layout.tls_cert) == 0o644
    cert, key = layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()
    assert tls.validate(cert, key).names == ["podium", "192.0.2.2"]
    assert not tls.ensure_certificate(layout, "other", [])
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == (cert, key)
    assert sorted(p.name for p in layout.tls_dir.iterdir()) == ["podium.crt", "podium.key"]


def test_ensure_certificate_never_replaces_a_usable_uploaded_pair(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    pki = Pki(names=["elsewhere.example.com"])  # names another host, expires in 300 days: still served
    cert, key = pem(pki.leaf) + pem(pki.inter), pki.key()
    tls.write_pair(layout, cert, key)
    for moment in (NOW, NOW + timedelta(days=299), NOW - timedelta(days=3650)):  # a clock far behind too
        assert tls.installed_problem(layout, moment) is None
        assert not tls.ensure_certificate(layout, "podium", [], now=moment)
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == (cert, key)
    assert sorted(p.name for p in layout.tls_dir.iterdir()) == ["podium.crt", "podium.key"]


def _broken_cases() -> dict[str, tuple[bytes, bytes, str]]:
    pki, other = Pki(), p256()
    cert = pem(pki.leaf) + pem(pki.inter)
    return {
        "mismatch": (cert, key_pem(other), "does not belong to the certificate podium.crt"),
        "garbage certificate": (b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
                                pki.key(), "the certificate podium.crt cannot be read"),
        "no certificate": (b"hello", pki.key(), "the certificate podium.crt cannot be read"),
        "garbage key": (cert, b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                        "the key podium.key cannot be read"),
        "encrypted key": (cert, key_pem(pki.leaf_key, b"secret"), "protected by a passphrase"),
        "expired": (cert, pki.key(), "the certificate expired on 2026-12-26 12:00 UTC"),
    }  # fmt: skip


@pytest.mark.parametrize("case", list(_broken_cases()))
def test_ensure_certificate_repairs_a_broken_pair_and_keeps_it_aside(tmp_path: Path, case: str) -> None:
    layout = Layout(tmp_path)
    cert, key, problem = _broken_cases()[case]
    layout.tls_dir.mkdir(parents=True)
    layout.tls_cert.write_bytes(cert)
    layout.tls_key.write_bytes(key)
    layout.tls_cert.chmod(0o640)
    layout.tls_key.chmod(0o600)
    moment = NOW + timedelta(days=400) if case == "expired" else NOW
    assert problem in (tls.installed_problem(layout, moment) or "")
    done = tls.ensure_certificate(layout, "podium", ["192.0.2.2"], now=moment)
    assert done and problem in done.problem
    stamp = moment.strftime("%Y%m%dT%H%M%SZ")
    assert [p.name for p in done.kept] == [f"podium.crt.broken-{stamp}", f"podium.key.broken-{stamp}"]
    old_cert, old_key = done.kept
    assert (old_cert.read_bytes(), old_key.read_bytes()) == (cert, key)
    assert mode(old_cert) == 0o640 and mode(old_key) == 0o600  # modes kept
    assert mode(layout.tls_key) == 0o600 and mode(layout.tls_cert) == 0o644
    info = tls.validate(layout.tls_cert.read_bytes(), layout.tls_key.read_bytes(), now=moment)
    assert info.self_signed and info.names == ["podium", "192.0.2.2"]
    assert tls.installed_problem(layout, moment) is None
    assert not tls.ensure_certificate(layout, "podium", [], now=moment)  # the next boot leaves it


def test_ensure_certificate_a_key_put_aside_is_never_wider_than_0600(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.tls_dir.mkdir(parents=True)
    layout.tls_cert.write_bytes(b"junk")
    layout.tls_key.write_bytes(key_pem(p256()))
    layout.tls_key.chmod(0o644)
    done = tls.ensure_certificate(layout, "podium", [], now=NOW)
    assert mode(done.kept[1]) == 0o600 and mode(done.kept[0]) == 0o644
    # A second repair within the same second does not overwrite the first one's files.
    layout.tls_key.write_bytes(key_pem(p256()))
    again = tls.ensure_certificate(layout, "podium", [], now=NOW)
    assert [p.name for p in again.kept] == [f"{p.name}-2" for p in done.kept]
    assert all(p.exists() for p in done.kept)


def test_ensure_certificate_replaces_a_lone_certificate(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    layout.tls_dir.mkdir(parents=True)
    layout.tls_cert.write_bytes(b"a certificate whose key was lost")
    done = tls.ensure_certificate(layout, "podium", [], now=NOW)
    assert done and "the key podium.key is missing" in done.problem
    assert [p.read_bytes() for p in done.kept] == [b"a certificate whose key was lost"]
    tls.validate(layout.tls_cert.read_bytes(), layout.tls_key.read_bytes())


def test_write_pair_restore_pair_round_trip(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    first = tls.generate_self_signed("first", [])
    second = tls.generate_self_signed("second", [])
    assert tls.write_pair(layout, *first) is None
    previous = tls.write_pair(layout, *second)
    assert previous == first
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == second
    assert mode(layout.tls_key) == 0o600
    tls.restore_pair(layout, previous)
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == first
    assert mode(layout.tls_key) == 0o600 and mode(layout.tls_cert) == 0o644
    tls.restore_pair(layout, None)
    assert not layout.tls_cert.exists() and not layout.tls_key.exists()


def test_write_pair_undoes_the_key_when_the_certificate_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path)
    first = tls.generate_self_signed("first", [])
    tls.write_pair(layout, *first)
    failures = iter([OSError(28, "No space left on device")])

    def failing_write(path: Path, data: bytes | str, mode: int = 0o644) -> None:
        if path == layout.tls_cert and (failure := next(failures, None)):
            raise failure
        write_atomic(path, data, mode)

    monkeypatch.setattr("podium_appliance.tls.write_atomic", failing_write)
    with pytest.raises(tls.TlsError, match=r"cannot write .*No space left"):
        tls.write_pair(layout, *tls.generate_self_signed("second", []))
    assert (layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()) == first


# The first boot's certificate


def test_the_first_boot_waits_for_the_first_address_for_its_certificate(
    appliance: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = iter([[], [], ["192.0.2.7"]])  # DHCP answers on the third look
    monkeypatch.setattr(addresses, "local_addresses", lambda: next(answers))
    assert tls.ensure_certificate(appliance, "podium", address_wait=5.0)
    names = tls.read_info(appliance.tls_cert).names
    assert "192.0.2.7" in names and next(answers, None) is None


# The wizard's certificate step


@pytest.fixture
def wizard_layout(appliance: Layout) -> Layout:
    """The unit tests' appliance, nginx's test and reload standing in as `true`."""
    with appliance.appliance_toml.open("a") as f:
        f.write('proxy_test = ["true"]\nproxy_reload = ["true"]\n')
    return appliance


def _files(cert: bytes, key: bytes) -> aiohttp.FormData:
    form = aiohttp.FormData()
    form.add_field("cert", cert, filename="c.pem", content_type="application/x-pem-file")
    form.add_field("key", key, filename="k.pem", content_type="application/x-pem-file")
    return form


async def test_wizard_shows_the_warnings_of_an_uploaded_certificate(
    wizard_layout: Layout, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(addresses, "local_addresses", lambda: ["192.0.2.2", "2001:db8::2"])
    key = p256()
    soon = datetime.now(UTC) + timedelta(days=10, hours=1)
    cert = make_cert("elsewhere.example.com", key, names=["elsewhere.example.com"], not_after=soon)
    done = ("admin", "network", "hostname", "time")
    async with wizard_client(wizard_layout, done) as (client, session):
        session.values["hostname"] = "podium.example.com"
        form = _files(pem(cert), key_pem(key))
        form.add_field("csrf", session.csrf)
        form.add_field("choice", "upload")
        async with client.post("/setup/tls", data=form, allow_redirects=False) as resp:
            page = html.unescape(await resp.text())
        assert resp.status == 200, page  # installed, but shown before going on
        assert wizard_layout.tls_cert.read_bytes() == pem(cert)
        warnings = re.findall(r'<p class="warning" role="status">(.*?)</p>', page, re.S)
        assert len(warnings) == 4, warnings
        assert f"expires on {soon:%Y-%m-%d %H:%M} UTC (in 10 days)" in warnings[0]
        assert "does not name podium.example.com (it names elsewhere.example.com)" in warnings[1]
        assert "self-signed" in warnings[2]
        assert "does not name the appliance's addresses 192.0.2.2, 2001:db8::2" in warnings[3]
        assert "https://192.0.2.2/ will show a warning" in warnings[3]
        assert 'id="installed"' in page and 'href="/setup/pool" id="continue"' in page
        assert "tls" in session.done  # going on is allowed: the warnings are not errors
        async with client.get("/setup/pool", allow_redirects=False) as resp:
            assert resp.status == 200

        # A generated certificate goes on at once; its self-signed warning is the choice just made.
        generate = {"csrf": session.csrf, "choice": "generate"}
        async with client.post("/setup/tls", data=generate, allow_redirects=False) as resp:
            assert resp.status == 303 and resp.headers["Location"] == "/setup/pool"
        # An uploaded certificate without anything to say about it goes on at once too.
        pki = Pki(names=["podium.example.com", "192.0.2.2", "2001:db8::2"])
        form = _files(pem(pki.leaf) + pem(pki.inter), pki.key())
        form.add_field("csrf", session.csrf)
        form.add_field("choice", "upload")
        monkeypatch.setattr(tls, "_utc", lambda now: NOW if now is None else now)
        async with client.post("/setup/tls", data=form, allow_redirects=False) as resp:
            assert resp.status == 303, await resp.text()
