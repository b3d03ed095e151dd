"""Certificates for the tests of the appliance's TLS: a PKI (root, intermediate, server certificate) made with
cryptography, PEM helpers, and installed pairs nginx cannot serve."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

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


def broken_pairs() -> dict[str, tuple[bytes, bytes, str]]:
    """Installed pairs nginx cannot serve: (certificate, key, what installed_problem says), by case."""
    pki, other = Pki(), p256()
    cert = pem(pki.leaf) + pem(pki.inter)
    garbage_cert = b"-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n"
    garbage_key = b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    return {
        "mismatch": (cert, key_pem(other), "does not belong to the certificate podium.crt"),
        "garbage certificate": (garbage_cert, pki.key(), "the certificate podium.crt cannot be read"),
        "no certificate": (b"hello", pki.key(), "the certificate podium.crt cannot be read"),
        "garbage key": (cert, garbage_key, "the key podium.key cannot be read"),
        "encrypted key": (cert, key_pem(pki.leaf_key, b"secret"), "protected by a passphrase"),
        "expired": (cert, pki.key(), "the certificate expired on 2026-12-26 12:00 UTC"),
    }
