"""Logging in and out of the console, and who a request's session belongs to.

Passwords are checked against argon2 hashes off the event loop; failed attempts are counted
per account and per client address by the same throttle as the API's credentials, and while
either is locked the password is not even checked. Every log-in, failure, throttling and
log-out goes to the operation log. An account with a TOTP secret logs in in two steps: the
password makes a short session that can only take the one-time code.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from postline.common.throttle import account_key, ip_key
from postline.reports.access import Caller, Gate
from postline.reports.console.accounts import Account, Accounts
from postline.reports.console.oplog import OperationLog
from postline.reports.console.sessions import CODE, FULL, Session, Sessions
from postline.reports.errors import Throttled

logger = logging.getLogger(__name__)

# A password hash to check when the account does not exist, so an unknown email costs the
# same time as a wrong password (no account enumeration by timing).
_DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$U45JlpvVHFclx/FZ8tJKSw$"
    "8UDWiWkZkhhNVz0RVMaIK1OOyvj0M83lb7OTzN/q8xw"
)


@dataclass(frozen=True)
class User:
    """A logged-in console account and its session."""

    account: Account
    session: Session

    @property
    def caller(self) -> Caller:
        return Caller(self.account.email, self.account.role)


@dataclass(frozen=True)
class LoginResult:
    token: str
    session: Session


class LoginFailed(Exception):
    pass


class ConsoleAuth:
    def __init__(self, gate: Gate, accounts: Accounts, sessions: Sessions, oplog: OperationLog):
        self.gate = gate
        self.accounts = accounts
        self.sessions = sessions
        self.oplog = oplog

    async def user(self, token: str | None, *, stage: str = FULL) -> User | None:
        session = await self.sessions.find(token)
        if session is None or session.stage != stage:
            return None
        account = await self.accounts.get(session.email)
        if account is None or account.disabled:
            return None
        return User(account, session)

    async def _throttled(self, email: str, ip: str) -> None:
        try:
            self.gate.check_throttle(account_key(email), ip_key(ip))
        except Throttled:
            await self.oplog.record(email, ip, "login_throttled")
            raise

    async def _failed(self, email: str, ip: str, why: str) -> None:
        self.gate.throttle.failed(account_key(email), ip_key(ip))
        await self.oplog.record(email, ip, "login_failed", detail=why)

    async def login(self, email: str, password: str, ip: str) -> LoginResult:
        """Check the password; a session (``code`` stage for TOTP accounts) or LoginFailed.
        Throttled when the account or the address failed too often."""
        email = email.strip().lower()[:320]
        await self._throttled(email, ip)
        account = await self.accounts.get(email) if email else None
        if account is None:
            await asyncio.to_thread(Account(email, "", _DUMMY_HASH, "en", "UTC").verify, password)
            await self._failed(email, ip, "unknown account")
            raise LoginFailed
        ok = await asyncio.to_thread(account.verify, password)
        if not ok or account.disabled:
            await self._failed(email, ip, "account disabled" if ok else "wrong password")
            raise LoginFailed
        if account.has_totp:
            token, session = await self.sessions.start(email, CODE, ip)
            return LoginResult(token, session)
        self.gate.throttle.succeeded(account_key(email))
        token, session = await self.sessions.start(email, FULL, ip)
        await self.oplog.record(email, ip, "login")
        return LoginResult(token, session)

    async def second_step(self, pending: User, code: str, ip: str) -> LoginResult:
        """The one-time code of a ``code`` session: a full session, or LoginFailed."""
        email = pending.account.email
        await self._throttled(email, ip)
        if not self.accounts.check_code(pending.account, code):
            await self._failed(email, ip, "wrong one-time code")
            raise LoginFailed
        await self.sessions.revoke(pending.session)
        self.gate.throttle.succeeded(account_key(email))
        token, session = await self.sessions.start(email, FULL, ip)
        await self.oplog.record(email, ip, "login", detail="with one-time code")
        return LoginResult(token, session)

    async def logout(self, user: User, ip: str) -> None:
        await self.sessions.revoke(user.session)
        await self.oplog.record(user.account.email, ip, "logout")
