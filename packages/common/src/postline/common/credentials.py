"""API users' credentials (SMTP AUTH, the send and reports APIs) against the policy's hashes.

argon2 is deliberately slow (tens of milliseconds); a client that authenticates on every
connection would spend most of its time there, so successful checks are remembered by a digest
of the secret for a few minutes (a reloaded policy clears them: a changed secret or a removed
user takes effect at once).
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass

from postline.common.policy import Policy, PolicySource

_CACHE_SECONDS = 300.0


@dataclass(frozen=True)
class Principal:
    server: str
    api_user: str


def parse_authorization(header: str) -> tuple[str, str] | None:
    """``Bearer <user>:<secret>`` or HTTP Basic to (user, secret); None if malformed."""
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "basic":
        try:
            value = base64.b64decode(value, validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
    elif scheme.lower() != "bearer":
        return None
    user, sep, secret = value.partition(":")
    return (user, secret) if sep and user else None


class Credentials:
    def __init__(self, policy: PolicySource) -> None:
        self._policy = policy
        self._verified: dict[tuple[str, bytes], float] = {}
        self._verified_under: Policy | None = None

    @property
    def policy(self) -> Policy:
        return self._policy()

    def check(self, username: str, secret: str, client_ip: str) -> Principal | None:
        policy = self.policy
        if policy is not self._verified_under:
            self._verified = {}
            self._verified_under = policy
        found = policy.find_api_user(username)
        if found is None:
            return None
        server, user = found
        if not user.ip_allowed(client_ip):
            return None
        key = (username, hashlib.sha256(secret.encode()).digest())
        if self._verified.get(key, 0.0) > time.monotonic():
            return Principal(server, user.name)
        if not user.verify(secret):
            return None
        self._verified[key] = time.monotonic() + _CACHE_SECONDS
        return Principal(server, user.name)
