"""Console accounts: the policy file's, then what the console changed (in ClickHouse).

An account's row in ``console_accounts`` wins over its policy entry while that entry is the
one the row started from (``policy_digest``). When an operator edits the entry in the file
(a new password hash to recover a lost password, say), the file wins again, and the next
change in the console starts from it. Accounts made in the console have no policy entry.

Passwords are argon2id hashes; a TOTP secret (RFC 6238, 30-second steps, 6 digits) comes
from the policy's ``totp`` reference or from the console's two-factor set-up.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pyotp

from postline.common.policy import Policy, PolicySource, hash_secret
from postline.common.policy.console import ConsoleAccount
from postline.common.policy.secrets import Argon2Hash, SecretError, SecretRef
from postline.reports.console.state import insert, version_now
from postline.reports.store import Store

logger = logging.getLogger(__name__)

ROLES = ("admin", "viewer")
LANGUAGES = ("en", "ja")
MIN_PASSWORD = 8
TOTP_ISSUER = "Postline"

COLUMNS = (
    "email",
    "role",
    "password_hash",
    "totp_secret",
    "totp_reset",
    "language",
    "timezone",
    "disabled",
    "policy_digest",
    "changed",
    "changed_by",
    "version",
)


@dataclass(frozen=True)
class Account:
    email: str  # lowercased
    role: str
    password_hash: str
    language: str
    timezone: str
    disabled: bool = False
    totp_secret: str = ""  # a secret set up in the console
    totp_ref: SecretRef | None = None  # the policy's {env}/{file}, resolved when used
    totp_reset: bool = False  # the policy's second factor was turned off in the console
    policy_digest: str = ""  # the policy entry this account follows ("" = made here)
    in_policy: bool = False

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def verify(self, password: str) -> bool:
        """Slow by design (argon2): run it off the event loop."""
        return Argon2Hash(self.password_hash).verify(password)

    def totp_key(self) -> str | None:
        """The base32 TOTP secret, or None when the account has no second factor."""
        if self.totp_secret:
            return self.totp_secret
        if self.totp_ref is not None:
            return self.totp_ref.resolve()
        return None

    @property
    def has_totp(self) -> bool:
        return bool(self.totp_secret) or self.totp_ref is not None


def policy_digest(entry: ConsoleAccount) -> str:
    parts = (
        entry.email.lower(),
        entry.role.value,
        entry.password.hash,
        entry.totp.describe() if entry.totp else "",
        entry.language.value,
        str(entry.timezone),
    )
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def from_policy(entry: ConsoleAccount) -> Account:
    return Account(
        email=entry.email.lower(),
        role=entry.role.value,
        password_hash=entry.password.hash,
        language=entry.language.value,
        timezone=str(entry.timezone),
        totp_ref=entry.totp,
        policy_digest=policy_digest(entry),
        in_policy=True,
    )


def _from_row(row: dict[str, Any], entry: ConsoleAccount | None) -> Account:
    keeps_policy_totp = entry is not None and not row["totp_secret"] and not row["totp_reset"]
    return Account(
        email=row["email"],
        role=row["role"],
        password_hash=row["password_hash"],
        language=row["language"],
        timezone=row["timezone"],
        disabled=bool(row["disabled"]),
        totp_secret=row["totp_secret"],
        totp_ref=entry.totp if keeps_policy_totp and entry is not None else None,
        totp_reset=bool(row["totp_reset"]),
        policy_digest=row["policy_digest"],
        in_policy=entry is not None,
    )


class TotpError(ValueError):
    pass


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=TOTP_ISSUER)


class Accounts:
    def __init__(
        self, store: Store, policy: PolicySource, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.store = store
        self._policy = policy
        self.clock = clock
        self._used_steps: dict[str, int] = {}  # email -> the last TOTP step accepted

    @property
    def policy(self) -> Policy:
        """The policy as it is now: an account edited in the reloaded file follows it."""
        return self._policy()

    def _entry(self, email: str) -> ConsoleAccount | None:
        return self.policy.console.find_account(email)

    def _effective(
        self, row: dict[str, Any] | None, entry: ConsoleAccount | None
    ) -> Account | None:
        if entry is None:
            # Made in the console, or left over from an entry since removed from the file.
            return _from_row(row, None) if row is not None and not row["policy_digest"] else None
        if row is not None and row["policy_digest"] == policy_digest(entry):
            return _from_row(row, entry)
        return from_policy(entry)

    async def _rows(self, email: str | None = None) -> dict[str, dict[str, Any]]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM postline.console_accounts FINAL"
        params: dict[str, Any] = {}
        if email is not None:
            sql += " WHERE email = {email:String}"
            params["email"] = email
        rows = await self.store.query(sql, params)
        return {row["email"]: row for row in rows}

    async def get(self, email: str) -> Account | None:
        email = email.strip().lower()
        if not email:
            return None
        rows = await self._rows(email)
        return self._effective(rows.get(email), self._entry(email))

    async def all(self) -> list[Account]:
        rows = await self._rows()
        emails = sorted({*rows, *(a.email.lower() for a in self.policy.console.accounts)})
        found = [self._effective(rows.get(e), self._entry(e)) for e in emails]
        return [a for a in found if a is not None]

    async def save(self, account: Account, by: str) -> Account:
        """Write the account as it now is (the latest row wins)."""
        entry = self._entry(account.email)
        row = (
            account.email,
            account.role,
            account.password_hash,
            account.totp_secret,
            1 if account.totp_reset else 0,
            account.language,
            account.timezone,
            1 if account.disabled else 0,
            policy_digest(entry) if entry is not None else "",
            datetime.fromtimestamp(self.clock(), UTC),
            by,
            version_now(),
        )
        await insert(self.store, "console_accounts", [row], COLUMNS)
        saved = await self.get(account.email)
        assert saved is not None
        return saved

    async def reset_totp(self, account: Account, by: str) -> Account:
        return await self.save(replace(account, totp_secret="", totp_ref=None, totp_reset=True), by)

    async def set_totp(self, account: Account, secret: str, by: str) -> Account:
        return await self.save(replace(account, totp_secret=secret, totp_reset=False), by)

    async def create(
        self, email: str, password: str, role: str, language: str, timezone: str, by: str
    ) -> Account:
        hashed = await asyncio.to_thread(hash_secret, password)
        account = Account(email.lower(), role, hashed, language, timezone)
        return await self.save(account, by)

    async def set_password(self, account: Account, password: str, by: str) -> Account:
        hashed = await asyncio.to_thread(hash_secret, password)
        return await self.save(replace(account, password_hash=hashed), by)

    def check_code(self, account: Account, code: str, secret: str | None = None) -> bool:
        """Whether ``code`` is the account's current one-time code (or the one of ``secret``,
        a key being set up). One step before or after is accepted (clock drift); a code is
        accepted once only (a replayed code fails)."""
        code = "".join(code.split())
        try:
            key = secret or account.totp_key()
        except SecretError as exc:
            logger.error("%s: the TOTP secret cannot be read: %s", account.email, exc)
            return False
        if not key or not (code.isascii() and code.isdigit() and len(code) == 6):
            return False
        totp = pyotp.TOTP(key)
        now = self.clock()
        for drift in (0, -1, 1):
            at = now + drift * totp.interval
            step = int(at // totp.interval)
            if totp.verify(code, for_time=at, valid_window=0):
                if self._used_steps.get(account.email, -1) >= step:
                    return False
                self._used_steps[account.email] = step
                return True
        return False
