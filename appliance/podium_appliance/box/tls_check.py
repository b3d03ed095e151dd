"""Checking certificates: what a certificate file holds, whether an uploaded one can be served, whether the
installed one still can. Nothing here writes a file; installing is :mod:`.tls_install`'s.

An uploaded certificate file is what nginx's ``ssl_certificate`` expects: the server's certificate (the leaf)
first, then each intermediate, each one issued by the next. :func:`validate` refuses what nginx or browsers
would refuse (a key that is not the certificate's, dates, chain order), with a message saying what to do,
and warns about what they would only complain about (names, expiry soon, self-signed).
:func:`installed_problem` is the narrower question asked at boot and by the health check: can nginx serve
the installed pair at all.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID

from ..errors import ApplianceError
from ..layout import Layout

#: Below this many days left, an installed or uploaded certificate gets a warning.
EXPIRY_WARNING_DAYS = 30
#: What browsers accept for a server key; P-521 is left out because Chrome does not support it.
SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
MIN_RSA_BITS = 2048

_PASSPHRASE_FIX = "remove the passphrase with `openssl pkey -in key.pem -out plain.pem` and upload plain.pem"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TlsError(ApplianceError):
    """A certificate or key that cannot be used, with what to do about it."""


@dataclass(frozen=True)
class CertInfo:
    """What a person needs to know about a certificate: whom it names, until when, its fingerprint."""

    subject: str
    issuer: str
    names: list[str]
    not_before: datetime
    not_after: datetime
    fingerprint: str
    self_signed: bool
    chain_length: int
    warnings: list[str] = field(default_factory=list)


# Validation


def validate(
    cert_pem: bytes, key_pem: bytes, *, now: datetime | None = None, hostname: str | None = None
) -> CertInfo:
    """Check an uploaded certificate chain (leaf first) and its private key; TlsError says what is wrong."""
    chain = _load_chain(cert_pem)
    key = _load_key(key_pem)
    leaf = chain[0]
    _check_key(key, leaf)
    _check_leaf(leaf)
    moment = utc(now)
    for position, cert in enumerate(chain, start=1):
        _check_dates(cert, position, moment)
    _check_order(chain)
    return _info(chain, moment, hostname)


def read_info(cert_path: Path) -> CertInfo:
    """What the installed certificate file holds (no key check), for display and the health check."""
    try:
        data = cert_path.read_bytes()
    except OSError as e:
        raise TlsError(f"cannot read the certificate {cert_path}: {e.strerror}") from None
    return _info(_load_chain(data), utc(None), None)


def _load_chain(cert_pem: bytes) -> list[x509.Certificate]:
    if not cert_pem.strip():
        raise TlsError("the certificate file is empty: upload the certificate in PEM format")
    if b"-----BEGIN" not in cert_pem:
        raise TlsError(
            "the certificate is not in PEM format (text starting with -----BEGIN CERTIFICATE-----): "
            "convert a DER file with `openssl x509 -inform der -in cert.der -out cert.pem`, "
            "or a .pfx/.p12 file with `openssl pkcs12 -in cert.pfx -nokeys -out cert.pem`"
        )
    if b"PRIVATE KEY-----" in cert_pem:
        # nginx would accept it, but the certificate file is readable by everyone on the box
        raise TlsError(
            "the certificate file also holds a private key: keep the key only in the key file "
            "(the certificate file is readable by everyone), or check that the two files are not swapped"
        )
    if b"-----BEGIN CERTIFICATE-----" not in cert_pem:
        raise TlsError(
            "the certificate file holds no certificate (no -----BEGIN CERTIFICATE----- block): "
            "upload the server certificate your certificate authority issued, in PEM format"
        )
    try:
        return x509.load_pem_x509_certificates(cert_pem)
    except ValueError as e:
        raise TlsError(
            f"a certificate in the file is damaged and cannot be read ({_first_line(e)}): "
            "upload the file again as your certificate authority issued it"
        ) from None


def _load_key(key_pem: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    if not key_pem.strip():
        raise TlsError("the key file is empty: upload the private key in PEM format")
    if b"PRIVATE KEY-----" not in key_pem:
        swapped = b"-----BEGIN CERTIFICATE-----" in key_pem
        raise TlsError(
            "the key file holds a certificate, not a private key: check that the two files are not swapped"
            if swapped
            else "the key file is not a PEM private key (-----BEGIN PRIVATE KEY-----): "
            "upload the private key generated with the certificate request"
        )
    if b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in key_pem or b"Proc-Type: 4,ENCRYPTED" in key_pem:
        raise TlsError(
            f"the private key is protected by a passphrase, which nginx cannot type: {_PASSPHRASE_FIX}"
        )
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:  # encrypted in a way the header test above did not see
        raise TlsError(f"the private key is protected by a passphrase: {_PASSPHRASE_FIX}") from None
    except UnsupportedAlgorithm:
        raise TlsError(_unsupported_key("a kind this appliance cannot read")) from None
    except ValueError as e:
        raise TlsError(
            f"the private key cannot be read ({_first_line(e)}): upload the PEM key file as it was "
            "generated, unmodified"
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, SUPPORTED_CURVES):
        return key
    kind = f"ECDSA {key.curve.name}" if isinstance(key, ec.EllipticCurvePrivateKey) else _kind(key)
    raise TlsError(_unsupported_key(kind))


def _kind(key: object) -> str:
    return type(key).__name__.removesuffix("PrivateKey") or "unknown"


def _unsupported_key(kind: str) -> str:
    return (
        f"the private key is of a type browsers do not accept ({kind}): have the certificate issued "
        f"for an RSA key of {MIN_RSA_BITS} bits or more, or an ECDSA P-256 or P-384 key"
    )


def _same_key(key: PrivateKeyTypes, cert: x509.Certificate) -> bool:
    """Whether ``key`` is the private half of the certificate's public key."""
    der, spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    try:
        return key.public_key().public_bytes(der, spki) == cert.public_key().public_bytes(der, spki)
    except (ValueError, UnsupportedAlgorithm):
        return False


def _check_key(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey, leaf: x509.Certificate) -> None:
    if not _same_key(key, leaf):
        raise TlsError(
            "the private key does not belong to the certificate (the certificate's public key differs): "
            "upload the key that was generated with this certificate"
        )
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size < MIN_RSA_BITS:
        raise TlsError(
            f"the RSA key has only {key.key_size} bits, which browsers refuse: "
            f"have a certificate issued for a new key of {MIN_RSA_BITS} bits or more"
        )


def _check_leaf(leaf: x509.Certificate) -> None:
    if _is_ca(leaf):
        raise TlsError(
            f"the first certificate ({_label(leaf)}) is a certificate authority, not a server certificate: "
            "put the server's own certificate first, then its issuers"
        )


def _check_dates(cert: x509.Certificate, position: int, now: datetime) -> None:
    what = "the certificate" if position == 1 else f"certificate {position} in the file ({_label(cert)})"
    if now < cert.not_valid_before_utc:
        raise TlsError(
            f"{what} is not valid yet: it starts on {_when(cert.not_valid_before_utc)}; "
            "check the appliance's clock and time zone, or wait until then"
        )
    if now > cert.not_valid_after_utc:
        fix = (
            "renew it"
            if position == 1
            else "get the current intermediate certificate from your certificate authority"
        )
        raise TlsError(f"{what} expired on {_when(cert.not_valid_after_utc)}: {fix}")


def _check_order(chain: list[x509.Certificate]) -> None:
    for position, (cert, issuer) in enumerate(pairwise(chain), start=1):
        where = f"certificate {position} ({_label(cert)})"
        by = f"certificate {position + 1} ({_label(issuer)})"
        if cert.issuer != issuer.subject:
            raise TlsError(
                f"{where} was not issued by {by}{_found(chain, cert)}: put the leaf first, then each issuer"
            )
        try:
            cert.verify_directly_issued_by(issuer)
        except (InvalidSignature, ValueError, TypeError):
            # Same name, different key: usually an old or cross-signed issuer certificate.
            raise TlsError(
                f"{where} names {by} as its issuer, but its signature does not verify with that "
                "certificate's key: use the intermediate certificate your certificate authority sent with it"
            ) from None


def _found(chain: list[x509.Certificate], cert: x509.Certificate) -> str:
    # Naming where the issuer actually is (if it is in the file) tells the person how to reorder.
    for position, other in enumerate(chain, start=1):
        if other is not cert and other.subject == cert.issuer:
            return f" but by certificate {position} ({_label(other)})"
    return f" (its issuer, {cert.issuer.rfc4514_string()}, is not in the file)"


# Description


def _info(chain: list[x509.Certificate], now: datetime, hostname: str | None) -> CertInfo:
    leaf = chain[0]
    names = _names(leaf)
    self_signed = _self_signed(leaf)
    return CertInfo(
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        names=names,
        not_before=leaf.not_valid_before_utc,
        not_after=leaf.not_valid_after_utc,
        fingerprint=leaf.fingerprint(hashes.SHA256()).hex(":").upper(),
        self_signed=self_signed,
        chain_length=len(chain),
        warnings=_warnings(leaf, names, self_signed, now, hostname),
    )


def _warnings(
    leaf: x509.Certificate, names: list[str], self_signed: bool, now: datetime, hostname: str | None
) -> list[str]:
    warnings: list[str] = []
    left = leaf.not_valid_after_utc - now
    if left < timedelta(0):
        warnings.append(f"the certificate expired on {_when(leaf.not_valid_after_utc)}: renew it")
    elif left < timedelta(days=EXPIRY_WARNING_DAYS):
        warnings.append(
            f"the certificate expires on {_when(leaf.not_valid_after_utc)} "
            f"(in {left.days} days): renew it soon"
        )
    if not names:
        warnings.append(
            "the certificate has no Subject Alternative Name: browsers ignore the CN and will refuse it; "
            "have it reissued with the appliance's names"
        )
    elif hostname and not covers(names, hostname):
        warnings.append(
            f"the certificate does not name {hostname} (it names {', '.join(names)}): "
            f"browsers opening https://{hostname}/ will show a warning"
        )
    if self_signed:
        warnings.append(
            "the certificate is self-signed: browsers will warn until it is trusted; "
            "compare its fingerprint before accepting it"
        )
    return warnings


def address_warnings(names: list[str], addresses: list[str]) -> list[str]:
    """A warning naming the appliance's addresses a certificate does not name (none when it names them
    all, or names nothing at all: that has its own warning)."""
    missing = [address for address in addresses if not covers(names, address)]
    if not names or not missing:
        return []
    first = f"[{missing[0]}]" if ":" in missing[0] else missing[0]
    which = "address" if len(missing) == 1 else "addresses"
    return [
        f"the certificate does not name the appliance's {which} {', '.join(missing)}: browsers opening "
        f"https://{first}/ will show a warning; open the appliance by a name the certificate holds"
    ]


def covers(names: list[str], hostname: str) -> bool:
    """Whether a certificate's names cover ``hostname`` (a wildcard stands for exactly one label)."""
    wanted_ip = parse_ip(hostname)
    if wanted_ip is not None:
        return any(parse_ip(name) == wanted_ip for name in names)
    wanted = hostname.rstrip(".").lower()
    for name in (n.rstrip(".").lower() for n in names if parse_ip(n) is None):
        if name == wanted:
            return True
        if name.startswith("*.") and "." in wanted:
            label, rest = wanted.split(".", 1)
            if label and rest == name[2:]:
                return True
    return False


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    dns: list[str] = san.get_values_for_type(x509.DNSName)
    ips = [str(a) for a in san.get_values_for_type(x509.IPAddress)]
    return dns + ips


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        return False


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True


def _label(cert: x509.Certificate) -> str:
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return f"CN={cns[0].value!s}" if cns else cert.subject.rfc4514_string() or "no name"


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _first_line(error: Exception) -> str:
    return str(error).split(". See ")[0].splitlines()[0] if str(error) else type(error).__name__


def parse_ip(text: str) -> Address | None:
    """``text`` as an IP address, None when it is not one (a host name)."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def utc(now: datetime | None) -> datetime:
    """``now`` in UTC (a naive time is taken as UTC); the current time when None."""
    if now is None:
        return datetime.now(UTC)
    return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)


# The installed pair


def installed_problem(layout: Layout, now: datetime | None = None) -> str | None:
    """Why nginx cannot serve the installed certificate and key (None when it can, or none is installed).

    Only what makes the pair unusable counts: a file missing or unreadable, a key that does not belong to
    the certificate, a certificate that expired. A certificate whose names or chain are not ideal is still
    served (``validate`` warned about it when it was uploaded), and one not valid *yet* is left alone: at
    boot the clock may be behind until NTP answers.
    """
    found = {path: _read_if_any(path) for path in (layout.tls_cert, layout.tls_key)}
    cert_pem, key_pem = found[layout.tls_cert], found[layout.tls_key]
    if cert_pem is None and key_pem is None:
        return None
    if cert_pem is None:
        return f"the certificate {layout.tls_cert.name} is missing beside its key"
    if key_pem is None:
        return f"the key {layout.tls_key.name} is missing beside the certificate"
    try:
        leaf = x509.load_pem_x509_certificates(cert_pem)[0]
    except (ValueError, IndexError) as e:
        return f"the certificate {layout.tls_cert.name} cannot be read ({_first_line(e)})"
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        return f"the key {layout.tls_key.name} is protected by a passphrase, which nginx cannot type"
    except (ValueError, UnsupportedAlgorithm) as e:
        return f"the key {layout.tls_key.name} cannot be read ({_first_line(e)})"
    if not _same_key(key, leaf):
        return f"the key {layout.tls_key.name} does not belong to the certificate {layout.tls_cert.name}"
    if utc(now) > leaf.not_valid_after_utc:
        return f"the certificate expired on {_when(leaf.not_valid_after_utc)}"
    return None


def _read_if_any(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TlsError(f"cannot read {path}: {e.strerror}") from None
