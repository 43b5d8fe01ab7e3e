"""STARTTLS for the relay: the server context, and a self-signed certificate for development.

``python -m postline.ingress.tls DIR`` writes ``DIR/ingress.crt`` and ``DIR/ingress.key`` unless
both exist (``make run`` does this; production mounts a real certificate instead).
"""

from __future__ import annotations

import argparse
import datetime
import ipaddress
import os
import ssl
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

DEV_CERT = "ingress.crt"
DEV_KEY = "ingress.key"
DEV_NAMES = ("localhost", "postline.localhost")
DEV_IPS = ("127.0.0.1", "::1")


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The context STARTTLS uses: the configured certificate, TLS 1.2 or later."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


def ensure_dev_certificate(directory: Path, days: int = 365) -> tuple[Path, Path]:
    """A self-signed certificate for localhost in ``directory`` (made once, then reused)."""
    cert_path, key_path = directory / DEV_CERT, directory / DEV_KEY
    if cert_path.exists() and key_path.exists():
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Postline dev ingress")])
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in DEV_NAMES]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in DEV_IPS]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # The key is written owner-only before any byte of it lands on disk.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a self-signed dev certificate.")
    parser.add_argument("directory", type=Path)
    args = parser.parse_args(argv)
    cert, key = ensure_dev_certificate(args.directory)
    sys.stdout.write(f"{cert}\n{key}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
