"""Who is asking: an API user (credentials in ``Authorization``) or a console account (a
session), and the gate both pass: the policy's ``console.allowed_ips``, and failed
authentications slowed down per account and per client address
(:class:`postline.common.throttle.AuthThrottle`, shared with the console's log-in form).

An API user sees and changes its own server only; a console account sees every server, and
only an ``admin`` may change anything.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass

from postline.common.credentials import Credentials, Principal, parse_authorization
from postline.common.policy import Policy, PolicySource
from postline.common.throttle import AuthThrottle, account_key, ip_key
from postline.reports.errors import Forbidden, Throttled, Unauthorized

logger = logging.getLogger(__name__)

API_USER = "api"
ADMIN = "admin"
VIEWER = "viewer"


@dataclass(frozen=True)
class Caller:
    name: str  # the API user's name or the console account's email
    role: str  # api, admin or viewer
    server: str | None = None  # an API user's server; None: every server (console)

    @classmethod
    def api(cls, principal: Principal) -> Caller:
        return cls(principal.api_user, API_USER, principal.server)

    @property
    def may_change(self) -> bool:
        """Viewers read reports only; API users change their own server's suppressions."""
        return self.role != VIEWER

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN

    def require_change(self) -> None:
        if not self.may_change:
            raise Forbidden(f"{self.name} is a viewer: reports only, no changes")

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("only administrators may do this")


def retry_seconds(wait: float) -> int:
    return max(1, math.ceil(wait))


class Gate:
    def __init__(self, policy: PolicySource, throttle: AuthThrottle | None = None) -> None:
        self._policy = policy
        self.throttle = throttle or AuthThrottle()
        self.credentials = Credentials(policy)

    @property
    def policy(self) -> Policy:
        return self._policy()

    def ip_allowed(self, ip: str) -> bool:
        try:
            return self.policy.console.ip_allowed(ip)
        except ValueError:  # not an address (a test client, a Unix socket)
            return False

    def check_ip(self, ip: str) -> None:
        if not self.ip_allowed(ip):
            raise Forbidden(f"{ip or 'this address'} may not use the console or the reports API")

    def check_throttle(self, *keys: str) -> None:
        wait = self.throttle.retry_after(*keys)
        if wait > 0:
            raise Throttled(
                "too many failed authentications: try again later",
                retry_after=retry_seconds(wait),
            )

    async def api_user(self, authorization: str, ip: str) -> Caller:
        """The API user of an ``Authorization`` header (Bearer user:secret or Basic)."""
        parsed = parse_authorization(authorization)
        user = parsed[0] if parsed else ""
        keys = (account_key(user), ip_key(ip)) if user else (ip_key(ip),)
        self.check_throttle(*keys)
        principal = None
        if parsed is not None:
            # argon2 is slow on purpose: keep it off the event loop.
            principal = await asyncio.to_thread(self.credentials.check, *parsed, ip)
        if principal is None:
            self.throttle.failed(*keys)
            logger.info("%s failed API authentication from %s", user or "-", ip)
            raise Unauthorized("valid API user credentials are required")
        self.throttle.succeeded(account_key(user))
        return Caller.api(principal)
