"""The ``console`` section of the policy: who may use the web console and the reports API.

These are the initial accounts; the console keeps its own changes (passwords, preferences,
two-factor keys) in the reports service's ClickHouse, and an edited entry here wins over them.
"""

from __future__ import annotations

from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import model_validator

from postline.common.policy.base import Loc, PolicyModel, find_duplicates, raise_issues
from postline.common.policy.fields import (
    ANY_NETWORK,
    Argon2Field,
    Email,
    IPAddressValue,
    IPNetwork,
    SecretRefField,
    TimeZone,
    in_networks,
)


class ConsoleRole(StrEnum):
    ADMIN = "admin"  # service administrator
    VIEWER = "viewer"  # report viewer


class Language(StrEnum):
    EN = "en"
    JA = "ja"


class ConsoleAccount(PolicyModel):
    email: Email
    role: ConsoleRole
    password: Argon2Field
    totp: SecretRefField | None = None  # a base32 TOTP secret; None = no second factor
    language: Language = Language.EN
    timezone: TimeZone = ZoneInfo("UTC")

    def verify(self, password: str) -> bool:
        """Slow by design (argon2): run it off the event loop."""
        return self.password.verify(password)


class Console(PolicyModel):
    allowed_ips: tuple[IPNetwork, ...] = ANY_NETWORK
    accounts: tuple[ConsoleAccount, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> Console:
        issues: list[tuple[Loc, str]] = []
        find_duplicates(
            issues,
            ((("accounts", i, "email"), a.email.lower()) for i, a in enumerate(self.accounts)),
        )
        raise_issues(issues)
        return self

    def find_account(self, email: str) -> ConsoleAccount | None:
        """Emails compare case-insensitively."""
        email = email.lower()
        return next((a for a in self.accounts if a.email.lower() == email), None)

    def ip_allowed(self, ip: str | IPAddressValue) -> bool:
        return in_networks(ip, self.allowed_ips)
