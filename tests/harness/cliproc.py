"""Run the installed ``podium`` console script as a user would, and make certificates for its TLS tests."""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

PODIUM = Path(sys.executable).with_name("podium")


def environ(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a user whose configuration lives under ``home``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PODIUM_", "SSL_CERT"))}
    return {**env, "XDG_CONFIG_HOME": str(home), **extra}


def podium(
    *args: str, home: Path, input: str | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``podium ARGS`` and wait; a traceback on stderr fails the test unless ``--traceback`` was asked."""
    r = subprocess.run(
        [str(PODIUM), *args],
        capture_output=True,
        text=True,
        input=input if input is not None else "",
        env=environ(home, **env),
        timeout=timeout,
    )
    if "--traceback" not in args:
        assert "Traceback" not in r.stderr, r.stderr
    return r


def ok(*args: str, home: Path, **kw: Any) -> str:
    """``podium ARGS`` that must succeed: its stdout."""
    r = podium(*args, home=home, **kw)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r.stdout


def config_of(home: Path) -> dict[str, Any]:
    """The saved configuration."""
    return json.loads((home / "podium" / "config.json").read_text())  # type: ignore[no-any-return]


def objects(home: Path, *filters: str) -> list[dict[str, Any]]:
    """``podium list-objects FILTERS`` parsed."""
    return json.loads(ok("list-objects", *filters, home=home))  # type: ignore[no-any-return]


def certificate(
    directory: Path,
    name: str,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
) -> tuple[Path, Path, x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A certificate for 127.0.0.1 and localhost (self-signed unless ``issuer``): (cert file, key file, …)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0].subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
    cert = builder.sign(issuer[1] if issuer else key, hashes.SHA256())
    cert_path, key_path = directory / f"{name}.pem", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path, cert, key


def fingerprint(cert: x509.Certificate) -> str:
    """A certificate's SHA-256 fingerprint as ``AB:CD:…``."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def wait_seen(home: Path, id_: str) -> dict[str, object]:
    """The object once Podium has it."""
    for _ in range(100):
        found = objects(home, f"id={id_}")
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"{id_} never reached Podium")
