"""Standard Webhooks signatures (the specification's "Signature scheme").

Every POST carries ``webhook-id``, ``webhook-timestamp`` (seconds since the epoch) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``.

The policy's ``secret`` (``{env: NAME}`` or ``{file: /path}``) holds the secret in the
specification's form, ``whsec_`` followed by the base64 of 24 to 64 random bytes (make one
with ``postline webhooks secret``); the HMAC key is those bytes. The same string is what a
receiver hands the specification's libraries (``Webhook("whsec_...")``). As the libraries
do, the ``whsec_`` prefix may be left out; anything that is not base64 of 24 to 64 bytes is
refused when the reports service starts, naming the policy key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os

from postline.common.policy.secrets import SecretError, SecretRef

SECRET_PREFIX = "whsec_"
# The specification: "secrets should be between 24 bytes and 64 bytes".
MIN_KEY_BYTES = 24
MAX_KEY_BYTES = 64


def new_secret(size: int = 32) -> str:
    """A fresh secret in the specification's form."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(size)).decode()


def key_of(secret: str) -> bytes:
    """The HMAC key a secret stands for; ValueError says what is wrong with it."""
    text = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(
            f"a webhook secret is {SECRET_PREFIX}<base64> (make one with "
            "`postline webhooks secret`)"
        ) from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(
            f"a webhook secret decodes to {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes, "
            f"this one to {len(key)}"
        )
    return key


class SignatureKey:
    """The key of one endpoint; signs bodies."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        self._key = key

    @classmethod
    def resolve(cls, ref: SecretRef) -> SignatureKey:
        """Read the policy's secret reference; SecretError names the policy key."""
        try:
            return cls(key_of(ref.resolve()))
        except ValueError as exc:
            where = f"{ref.key}: " if ref.key else ""
            raise SecretError(f"{where}{exc}") from None

    def signature(self, webhook_id: str, timestamp: int, body: bytes) -> str:
        signed = f"{webhook_id}.{timestamp}.".encode() + body
        digest = hmac.new(self._key, signed, hashlib.sha256).digest()
        return "v1," + base64.b64encode(digest).decode()

    def headers(self, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
        return {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.signature(webhook_id, timestamp, body),
        }

    def __repr__(self) -> str:
        return "SignatureKey(...)"
