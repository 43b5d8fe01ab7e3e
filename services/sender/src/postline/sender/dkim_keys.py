"""DKIM keys: making a key pair and the DNS TXT record that publishes its public half.

RFC 6376 §3.6.1: the record lives at ``<selector>._domainkey.<domain>`` and holds
``v=DKIM1; k=<type>; p=<base64 public key>``: for RSA the DER SubjectPublicKeyInfo, for
Ed25519 the raw 32-byte key (RFC 8463 §4). A TXT string holds at most 255 bytes
(RFC 1035 §3.3.14), so a long record is written as several strings, which receivers join.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from postline.common.policy import DkimAlgorithm

TXT_STRING_LIMIT = 255
DEFAULT_RSA_BITS = 2048  # RFC 8301 §3.2: 1024 at least, 2048 recommended


@dataclass(frozen=True)
class DnsRecord:
    name: str  # fully qualified, with the final dot
    value: str

    def strings(self) -> list[str]:
        """The value split into TXT strings of at most 255 bytes."""
        return [
            self.value[i : i + TXT_STRING_LIMIT]
            for i in range(0, len(self.value), TXT_STRING_LIMIT)
        ]

    def zone_line(self, ttl: int = 3600) -> str:
        quoted = " ".join(f'"{s}"' for s in self.strings())
        return f"{self.name} {ttl} IN TXT ( {quoted} )"


def generate(algorithm: DkimAlgorithm, bits: int = DEFAULT_RSA_BITS) -> bytes:
    """A new private key as PEM (PKCS#8), the form the sender reads."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == DkimAlgorithm.RSA_SHA256:
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_value(private_pem: bytes, algorithm: DkimAlgorithm) -> str:
    """The ``p=`` value for a private key (PEM)."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    if algorithm == DkimAlgorithm.RSA_SHA256:
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode("ascii")
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return base64.b64encode(key.public_key().public_bytes_raw()).decode("ascii")


def dns_record(
    domain: str, selector: str, algorithm: DkimAlgorithm, private_pem: bytes
) -> DnsRecord:
    key_type = "rsa" if algorithm == DkimAlgorithm.RSA_SHA256 else "ed25519"
    name = f"{selector}._domainkey.{domain.lower().removesuffix('.')}."
    value = f"v=DKIM1; k={key_type}; p={public_key_value(private_pem, algorithm)}"
    return DnsRecord(name, value)
