"""Who is sending: the API user from ``Authorization`` and the client's address.

``Bearer <api user>:<secret>`` or HTTP Basic (HTTP), the ``authorization`` metadata (gRPC).
Wrong or missing credentials are a 401; right credentials from an address outside the user's
``allowed_ips`` are a 403, so the client learns what to fix, but only after proving the secret
(an unauthenticated caller cannot probe which users exist). argon2 is slow by design, so every
check runs in a worker thread; `Credentials` remembers successes for a few minutes.

Failed authentications are throttled per API user and per client address
(``postline.common.throttle``, shared with the SMTP relay): past a few, the account or address
is locked for a while that doubles with each further failure, and a request made meanwhile is
a 429 with ``Retry-After`` (gRPC ``RESOURCE_EXHAUSTED``) without its secret being checked.
"""

from __future__ import annotations

import asyncio
import logging
import math

from postline.common.credentials import Credentials, Principal, parse_authorization
from postline.common.policy import ApiUser, Policy, PolicySource
from postline.common.throttle import AuthThrottle, account_key, ip_key
from postline.ingress.api import errors
from postline.ingress.api.errors import ApiError, throttled, unauthorized

logger = logging.getLogger(__name__)

SCHEMES = "Bearer <api user>:<secret> or Basic"


class Authenticator:
    def __init__(self, policy: PolicySource, throttle: AuthThrottle | None = None) -> None:
        self._policy = policy
        self.credentials = Credentials(policy)
        self.throttle = throttle if throttle is not None else AuthThrottle()

    @property
    def policy(self) -> Policy:
        return self._policy()

    async def principal(self, authorization: str | None, client_ip: str) -> Principal:
        if not authorization:
            raise unauthorized(f"credentials required: Authorization: {SCHEMES}")
        parsed = parse_authorization(authorization)
        if parsed is None:
            raise unauthorized(f"malformed Authorization header, expected {SCHEMES}")
        user, secret = parsed
        keys = (account_key(user), ip_key(client_ip))
        wait = self.throttle.retry_after(*keys)
        if wait > 0:
            seconds = math.ceil(wait)
            logger.warning("%s API auth as %s refused: throttled for %ss", client_ip, user, seconds)
            raise throttled(seconds)
        try:
            principal = await self._check(user, secret, client_ip)
        except ApiError as exc:
            if exc.status == 401:
                self.throttle.failed(*keys)
            raise
        self.throttle.succeeded(keys[0])
        return principal

    async def _check(self, user: str, secret: str, client_ip: str) -> Principal:
        found = self.policy.find_api_user(user)
        if found is None:
            logger.info("%s API auth failed: unknown user %s", client_ip, user)
            raise unauthorized("invalid API user or secret")
        api_user = found[1]
        if not _ip_allowed(api_user, client_ip):
            if await asyncio.to_thread(api_user.verify, secret):
                logger.info("%s API user %s not allowed from this address", client_ip, user)
                raise ApiError(
                    403,
                    errors.IP_NOT_ALLOWED,
                    f"API user {user!r} may not send from {client_ip or 'an unknown address'} "
                    "(allowed_ips)",
                )
            raise unauthorized("invalid API user or secret")
        principal = await asyncio.to_thread(self.credentials.check, user, secret, client_ip)
        if principal is None:
            logger.info("%s API auth failed for %s", client_ip, user)
            raise unauthorized("invalid API user or secret")
        return principal


def _ip_allowed(user: ApiUser, ip: str) -> bool:
    try:
        return user.ip_allowed(ip)
    except ValueError:  # not an IP address (a Unix socket, a test client's placeholder)
        return False
