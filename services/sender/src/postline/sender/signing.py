"""DKIM signing (RFC 6376) with dkimpy, for From domains that have a key in the policy.

* RSA keys (``rsa-sha256``) are PEM files, PKCS#1 or PKCS#8, as `postline dkim keygen` or
  openssl writes them.
* Ed25519 keys (``ed25519-sha256``, RFC 8463) are PEM PKCS#8 files (`postline dkim keygen`,
  openssl) or the base64 32-byte seed that dkimpy's own ``dknewkey`` writes.
* Canonicalisation is relaxed/relaxed: it survives the header re-folding and trailing-space
  changes relays make. dkimpy's default header list is signed (From, To, Subject, Date,
  Message-ID, ...), the identifying ones twice so a relay cannot add a second copy.
* The key is read when used (``{file: ...}`` or ``{env: ...}``), so a rotated key is picked
  up without a restart.
"""

from __future__ import annotations

import base64
import functools
from typing import Any

import dkim
import dkim.crypto
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from postline.common.policy import DkimAlgorithm, DkimKey, SecretError

CANONICALIZATION = (b"relaxed", b"relaxed")
_RSA_FIELDS = (
    "modulus",
    "publicExponent",
    "privateExponent",
    "prime1",
    "prime2",
    "exponent1",
    "exponent2",
    "coefficient",
)
_DIGESTS = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


def rsassa_pkcs1_v1_5_sign(hash: Any, private_key: dict[str, int]) -> bytes:
    """dkimpy's RSA signing primitive, computed by OpenSSL (through cryptography).

    dkimpy does the RSA operation in pure Python (about 17 ms for a 2048-bit key, holding the
    GIL), which would cap a sender at some 60 signed messages a second; OpenSSL takes well
    under a millisecond. RSASSA-PKCS1-v1_5 is deterministic, so the signature is the same
    bytes dkimpy would produce (a test compares them); everything else (canonicalisation,
    header hashing, the DKIM-Signature field) stays dkimpy's.
    """
    key = _openssl_key(tuple(private_key[field] for field in _RSA_FIELDS))
    digest = _DIGESTS[hash.name.lower()]()
    return key.sign(hash.digest(), padding.PKCS1v15(), Prehashed(digest))


@functools.lru_cache(maxsize=64)
def _openssl_key(fields: tuple[int, ...]) -> rsa.RSAPrivateKey:
    n, e, d, p, q, dmp1, dmq1, iqmp = fields
    return rsa.RSAPrivateNumbers(
        p, q, d, dmp1, dmq1, iqmp, rsa.RSAPublicNumbers(e, n)
    ).private_key()


# dkimpy looks the primitive up in its package namespace when it signs; replacing it there
# (once, at import) is the one way in without copying its signing code.
dkim.RSASSA_PKCS1_v1_5_sign = rsassa_pkcs1_v1_5_sign


class SigningFailed(Exception):
    """The key cannot be read or used; the message must not go out unsigned."""


def sign(content: bytes, key: DkimKey) -> bytes:
    """``content`` (CRLF line ends) with a DKIM-Signature field prepended."""
    try:
        private = signing_key(key)
        signature = dkim.sign(
            content,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            private,
            canonicalize=CANONICALIZATION,
            signature_algorithm=key.algorithm.value.encode("ascii"),
            linesep=b"\r\n",
        )
    except (SecretError, ValueError, dkim.DKIMException) as exc:
        raise SigningFailed(str(exc).splitlines()[0] if str(exc) else repr(exc)) from exc
    return signature + content


def signing_key(key: DkimKey) -> bytes:
    """The private key in the form dkimpy takes for the key's algorithm."""
    raw = key.key.resolve_bytes()
    if key.algorithm == DkimAlgorithm.RSA_SHA256:
        if b"-----BEGIN" not in raw:
            raise ValueError(f"{key.key.describe()}: expected a PEM RSA private key")
        return raw.replace(b"\r\n", b"\n")  # dkimpy reads PEM with LF line ends
    if b"-----BEGIN" in raw:
        private = serialization.load_pem_private_key(raw, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise ValueError(f"{key.key.describe()}: not an Ed25519 private key")
        return base64.b64encode(private.private_bytes_raw())
    seed = raw.strip()
    if len(base64.b64decode(seed, validate=True)) != 32:
        raise ValueError(f"{key.key.describe()}: an Ed25519 seed is 32 bytes")
    return seed
