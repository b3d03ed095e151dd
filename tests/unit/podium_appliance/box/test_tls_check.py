"""Checking certificates: the refusals and warnings of an uploaded chain and key, what an installed
certificate file says, and whether nginx can serve the installed pair."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from podium_appliance.box import tls_check
from podium_appliance.box.tls_install import generate_self_signed, write_pair
from podium_appliance.errors import ApplianceError
from podium_appliance.layout import Layout

from ..pki import NOW, Pki, broken_pairs, key_pem, make_cert, p256, pem


def message(cert: bytes, key: bytes, hostname: str | None = None) -> str:
    """The message validate refuses the pair with."""
    with pytest.raises(tls_check.TlsError) as caught:
        tls_check.validate(cert, key, now=NOW, hostname=hostname)
    return caught.value.message


# validate


def test_validate_refuses_key_mismatch() -> None:
    pki = Pki()
    text = message(pem(pki.leaf) + pem(pki.inter), key_pem(p256()))
    assert "does not belong to the certificate" in text and "upload the key" in text


def test_validate_refuses_expired_leaf() -> None:
    cert, key = generate_self_signed("podium", [], days=30, now=NOW - timedelta(days=60))
    text = message(cert, key)
    expired_on = (NOW - timedelta(days=30)).strftime("%Y-%m-%d")
    assert "expired on" in text and expired_on in text and "renew" in text


def test_validate_refuses_not_yet_valid_leaf() -> None:
    cert, key = generate_self_signed("podium", [], now=NOW + timedelta(days=2))
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
    info = tls_check.validate(chain, pki.key(), now=NOW, hostname="podium.example.com")
    assert info.chain_length == (3 if with_root else 2)
    assert info.issuer == "CN=Test Intermediate" and not info.self_signed
    assert info.warnings == []


def test_validate_accepts_crlf_and_text_around_blocks() -> None:
    pki = Pki()
    chain = b"Subject: podium\r\n" + (pem(pki.leaf) + pem(pki.inter)).replace(b"\n", b"\r\n")
    assert tls_check.validate(chain, pki.key(), now=NOW).chain_length == 2


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
    info = tls_check.validate(pem(make_cert("podium", key, names=["podium"])), key_pem(key), now=NOW)
    assert info.self_signed


def test_validate_refuses_unsupported_curve() -> None:
    key = ec.generate_private_key(ec.SECP521R1())
    text = message(pem(make_cert("podium", key, names=["podium"])), key_pem(key))
    assert "secp521r1" in text and "P-256" in text


def test_validate_warns_hostname_not_covered() -> None:
    pki = Pki()
    info = tls_check.validate(
        pem(pki.leaf) + pem(pki.inter), pki.key(), now=NOW, hostname="other.example.com"
    )
    assert len(info.warnings) == 1
    assert "does not name other.example.com" in info.warnings[0]


def test_validate_wildcard_covers_one_label() -> None:
    pki = Pki(names=["*.example.com"])
    chain, key = pem(pki.leaf) + pem(pki.inter), pki.key()
    assert tls_check.validate(chain, key, now=NOW, hostname="podium.example.com").warnings == []
    assert tls_check.validate(chain, key, now=NOW, hostname="a.b.example.com").warnings
    assert tls_check.validate(chain, key, now=NOW, hostname="example.com").warnings


def test_address_warnings_name_the_addresses_not_covered() -> None:
    (only,) = tls_check.address_warnings(["podium.example.com", "192.0.2.2"], ["192.0.2.2", "2001:db8::2"])
    assert "the appliance's address 2001:db8::2: browsers opening https://[2001:db8::2]/" in only
    assert tls_check.address_warnings(["podium", "192.0.2.2"], ["192.0.2.2"]) == []
    assert tls_check.address_warnings([], ["192.0.2.2"]) == []  # no names at all: a warning of its own


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
    assert tls_check.covers(names, hostname) is covered


def test_validate_warns_expiring_soon() -> None:
    cert, key = generate_self_signed("podium", [], days=20, now=NOW)
    info = tls_check.validate(cert, key, now=NOW)
    assert any("expires on" in w and "renew it soon" in w for w in info.warnings)


def test_validate_warns_without_subject_alternative_name() -> None:
    key = p256()
    info = tls_check.validate(pem(make_cert("podium", key)), key_pem(key), now=NOW)
    assert info.names == [] and any("no Subject Alternative Name" in w for w in info.warnings)


def test_tls_error_is_an_appliance_error() -> None:
    assert issubclass(tls_check.TlsError, ApplianceError)


# read_info


def test_read_info_installed_certificate(tmp_path: Path) -> None:
    pki = Pki()
    path = tmp_path / "podium.crt"
    path.write_bytes(pem(pki.leaf) + pem(pki.inter))
    info = tls_check.read_info(path)
    assert info.subject == "CN=podium.example.com" and info.chain_length == 2
    assert info.not_after == NOW + timedelta(days=300)


def test_read_info_warns_expired(tmp_path: Path) -> None:
    path = tmp_path / "podium.crt"
    path.write_bytes(generate_self_signed("podium", [], days=1, now=datetime(2020, 1, 1, tzinfo=UTC))[0])
    assert any("expired on 2020-01-02" in w for w in tls_check.read_info(path).warnings)


def test_read_info_missing_file(tmp_path: Path) -> None:
    with pytest.raises(tls_check.TlsError, match="cannot read the certificate"):
        tls_check.read_info(tmp_path / "absent.crt")


# installed_problem


@pytest.mark.parametrize("case", list(broken_pairs()))
def test_installed_problem_names_what_nginx_could_not_serve(tmp_path: Path, case: str) -> None:
    layout = Layout(tmp_path)
    cert, key, problem = broken_pairs()[case]
    layout.tls_dir.mkdir(parents=True)
    layout.tls_cert.write_bytes(cert)
    layout.tls_key.write_bytes(key)
    moment = NOW + timedelta(days=400) if case == "expired" else NOW
    assert problem in (tls_check.installed_problem(layout, moment) or "")


def test_installed_problem_none_without_a_pair_or_with_a_usable_one(tmp_path: Path) -> None:
    layout = Layout(tmp_path)
    assert tls_check.installed_problem(layout, NOW) is None
    pki = Pki(names=["elsewhere.example.com"])  # names another host: still served
    write_pair(layout, pem(pki.leaf) + pem(pki.inter), pki.key())
    assert tls_check.installed_problem(layout, NOW) is None
