"""Installing the appliance's HTTPS certificate (served by nginx): the key and certificate files, nginx's
test and graceful reload, and the self-signed certificate made at first boot.

An uploaded pair is checked first (:func:`.tls_check.validate`: nothing is written for a pair that cannot be
served), then written key first, then tested by nginx and put back as it was if nginx refuses it
(:func:`install`). At every boot :func:`ensure_certificate` makes a self-signed pair when none is installed,
or in place of one nginx could not serve, whose files are kept aside.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..errors import ApplianceError
from ..layout import Layout, Settings, write_atomic
from .addresses import wait_for_addresses
from .host import check_hostname
from .proxy import Proxy
from .tls_check import Address, CertInfo, TlsError, installed_problem, parse_ip, utc, validate

log = logging.getLogger(__name__)

#: Apple's clients refuse TLS server certificates valid for longer than this (NotBefore to NotAfter).
MAX_DAYS = 825


# A certificate uploaded


def install(
    layout: Layout, settings: Settings, cert_pem: bytes, key_pem: bytes, hostname: str | None = None
) -> CertInfo:
    """Check and install a certificate and its key, then reload nginx (open connections stay up).

    Nothing is written when the pair is invalid; the previous pair is put back if nginx refuses it.
    """
    info = validate(cert_pem, key_pem, hostname=hostname)
    proxy = Proxy(layout, settings)
    previous = write_pair(layout, cert_pem, key_pem)
    try:
        proxy.test()
    except ApplianceError:
        restore_pair(layout, previous)
        raise
    proxy.reload()
    return info


# A self-signed certificate


def generate_self_signed(
    hostname: str, addresses: list[str], days: int = MAX_DAYS, now: datetime | None = None
) -> tuple[bytes, bytes]:
    """A new ECDSA P-256 key and a self-signed certificate naming ``hostname`` and ``addresses`` (PEM)."""
    if not 1 <= days <= MAX_DAYS:
        raise TlsError(f"a certificate must be valid for 1 to {MAX_DAYS} days, not {days}")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, _common_name(hostname))])
    start = utc(now).replace(microsecond=0)
    not_before = start - timedelta(hours=1)  # a client whose clock is a little behind still accepts it
    # The validity period, not only the time left, must stay within Apple's limit.
    not_after = min(start + timedelta(days=days), not_before + timedelta(days=MAX_DAYS))
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(_san(hostname, addresses)), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    log.info("generated a self-signed certificate for %s until %s", hostname, not_after.date())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _common_name(hostname: str) -> str:
    _check_hostname(hostname)
    # X.509 limits a CN to 64 characters; the SAN, which browsers use, carries the full name anyway.
    return hostname if len(hostname) <= 64 else hostname.split(".")[0]


def _check_hostname(hostname: str) -> None:
    if parse_ip(hostname) is not None:
        return
    try:
        check_hostname(hostname)  # the one rule for host names, as the wizard's host name step applies it
    except ApplianceError as e:
        raise TlsError(e.message) from None


def _san(hostname: str, addresses: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    ips: list[Address] = []
    host_ip = parse_ip(hostname)
    if host_ip is not None:
        ips.append(host_ip)
    else:
        full = hostname.rstrip(".")
        names.append(x509.DNSName(full))
        if "." in full:
            names.append(x509.DNSName(full.split(".")[0]))  # what people type on a LAN without a domain
    for text in addresses:
        address = parse_ip(text)
        if address is None:
            raise TlsError(f"{text!r} is not an IP address")
        if address not in ips:
            ips.append(address)
    return names + [x509.IPAddress(address) for address in ips]


def _key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


# At boot


@dataclass(frozen=True)
class Ensured:
    """What :func:`ensure_certificate` did: nothing (false), or made a pair, replacing a broken one."""

    made: bool
    problem: str = ""  # why the installed pair could not be served ("" when there was none)
    kept: tuple[Path, ...] = ()  # where the broken files were put aside

    def __bool__(self) -> bool:
        return self.made


def ensure_certificate(
    layout: Layout,
    hostname: str,
    addresses: list[str] | None = None,
    *,
    now: datetime | None = None,
    address_wait: float = 0.0,
) -> Ensured:
    """Make a self-signed certificate unless a usable one is installed (see :func:`.tls_check.installed_problem`),
    for ``addresses`` (default: the machine's, waiting up to ``address_wait`` seconds for a first one).

    A broken pair is not deleted: each file is renamed ``<name>.broken-<UTC time>`` beside it (its mode
    kept; a key's never wider than 0600), then the new pair is written.
    """
    problem = installed_problem(layout, now)
    if problem is None and layout.tls_cert.exists():
        return Ensured(False)
    kept = _put_aside(layout, now) if problem else ()
    if addresses is None:
        addresses = wait_for_addresses(address_wait)
    cert, key = generate_self_signed(hostname, addresses, now=now)
    write_pair(layout, cert, key)
    if problem:
        log.warning("the installed certificate was unusable (%s): a self-signed one replaces it", problem)
    return Ensured(True, problem or "", kept)


def _put_aside(layout: Layout, now: datetime | None) -> tuple[Path, ...]:
    stamp = utc(now).strftime("%Y%m%dT%H%M%SZ")
    kept = []
    for path in (layout.tls_cert, layout.tls_key):
        if not path.exists():
            continue
        target = path.with_name(f"{path.name}.broken-{stamp}")
        number = 1
        while target.exists():
            number += 1
            target = path.with_name(f"{path.name}.broken-{stamp}-{number}")
        try:
            os.rename(path, target)  # a rename keeps the file's mode and owner
            if path == layout.tls_key:
                os.chmod(target, stat.S_IMODE(target.stat().st_mode) & 0o600)
        except OSError as e:
            raise TlsError(f"cannot put {path} aside as {target.name}: {e.strerror}") from None
        log.warning("kept the unusable %s as %s", path, target)
        kept.append(target)
    return tuple(kept)


# The files


def write_pair(layout: Layout, cert_pem: bytes, key_pem: bytes) -> tuple[bytes, bytes] | None:
    """Install a certificate and its key; returns the previous pair (None if there was none) for restore_pair."""
    previous = _read_pair(layout)
    # The key first: whoever finds the new certificate on disk also finds its key beside it.
    _write(layout.tls_key, key_pem, 0o600)
    try:
        _write(layout.tls_cert, cert_pem, 0o644)
    except TlsError:
        restore_pair(layout, previous)  # never leave the new key beside the old certificate
        raise
    log.info("installed the certificate %s and its key", layout.tls_cert)
    return previous


def restore_pair(layout: Layout, previous: tuple[bytes, bytes] | None) -> None:
    """Put back what write_pair returned: the previous pair, or no certificate at all (None)."""
    if previous is None:
        for path in (layout.tls_cert, layout.tls_key):
            path.unlink(missing_ok=True)
        log.info("removed the certificate %s and its key", layout.tls_cert)
        return
    cert_pem, key_pem = previous
    _write(layout.tls_key, key_pem, 0o600)
    _write(layout.tls_cert, cert_pem, 0o644)
    log.info("restored the previous certificate %s and its key", layout.tls_cert)


def _read_pair(layout: Layout) -> tuple[bytes, bytes] | None:
    try:
        return layout.tls_cert.read_bytes(), layout.tls_key.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise TlsError(f"cannot read the installed certificate or key: {e.filename}: {e.strerror}") from None


def _write(path: Path, data: bytes, mode: int) -> None:
    try:
        # The directory is created readable by all: certificates are public and the key file is 0600.
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_atomic(path, data, mode)
    except OSError as e:
        raise TlsError(f"cannot write {path}: {e.strerror}; check the disk and its permissions") from None
