"""Console sessions: a random token in an HttpOnly cookie, its SHA-256 in ClickHouse.

Every replica finds every session (and every log-out), and a restart keeps them. A session
expires after ``POSTLINE_CONSOLE_SESSION_TTL`` whatever happens; logging out revokes it at
once. Each session has its own CSRF token, which every form that changes something (and every
changing API call made with the session cookie, as ``X-CSRF-Token``) must carry.

The log-in form itself has no session yet: its CSRF token is a double-submit cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from postline.reports.console.state import insert, version_now
from postline.reports.store import Store

SESSION_COOKIE = "postline_session"
LOGIN_COOKIE = "postline_login"
FULL = "full"  # logged in
CODE = "code"  # password checked, waiting for the one-time code
CODE_TTL = 300.0  # seconds to type the one-time code

COLUMNS = ("token_hash", "email", "stage", "csrf", "created", "expires", "revoked", "ip", "version")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def same(a: str, b: str) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(a.encode(), b.encode())


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class Session:
    token_hash: str
    email: str
    stage: str
    csrf: str
    created: datetime
    expires: datetime
    ip: str

    def csrf_ok(self, presented: str | None) -> bool:
        return same(self.csrf, presented or "")


class Sessions:
    def __init__(self, store: Store, ttl: float, *, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.ttl = ttl
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    async def _write(self, session: Session, revoked: bool = False) -> None:
        row = (
            session.token_hash,
            session.email,
            session.stage,
            session.csrf,
            session.created,
            session.expires,
            1 if revoked else 0,
            session.ip,
            version_now(),
        )
        await insert(self.store, "console_sessions", [row], COLUMNS)

    async def start(self, email: str, stage: str, ip: str) -> tuple[str, Session]:
        """A new session: its cookie token (to send once) and the session."""
        token = new_token()
        now = self._now()
        ttl = self.ttl if stage == FULL else min(self.ttl, CODE_TTL)
        session = Session(
            token_hash(token), email, stage, new_token(), now, now + timedelta(seconds=ttl), ip
        )
        await self._write(session)
        return token, session

    async def find(self, token: str | None) -> Session | None:
        """The live session of a cookie token: not revoked, not expired."""
        if not token or len(token) > 200:
            return None
        rows = await self.store.query(
            "SELECT token_hash, email, stage, csrf, created, expires, revoked, ip "
            "FROM postline.console_sessions FINAL WHERE token_hash = {h:String}",
            {"h": token_hash(token)},
        )
        if not rows or rows[0]["revoked"]:
            return None
        row = rows[0]
        expires = (
            row["expires"].replace(tzinfo=UTC) if row["expires"].tzinfo is None else row["expires"]
        )
        if expires <= self._now():
            return None
        created = row["created"]
        return Session(
            row["token_hash"],
            row["email"],
            row["stage"],
            row["csrf"],
            created.replace(tzinfo=UTC) if created.tzinfo is None else created,
            expires,
            row["ip"],
        )

    async def revoke(self, session: Session) -> None:
        await self._write(session, revoked=True)

    async def revoke_all(self, email: str) -> None:
        """End every live session of an account (disabled, password reset). Live by this
        service's clock, as ``find`` decides, not ClickHouse's: a database clock ahead of
        this one would leave out a session ``find`` still lets in."""
        rows = await self.store.query(
            "SELECT token_hash, email, stage, csrf, created, expires, ip "
            "FROM postline.console_sessions FINAL "
            "WHERE email = {e:String} AND revoked = 0 "
            "AND expires > fromUnixTimestamp64Milli({now_ms:Int64})",
            {"e": email, "now_ms": round(self.clock() * 1000)},
        )
        for row in rows:
            await self._write(
                Session(
                    row["token_hash"], row["email"], row["stage"], row["csrf"],
                    row["created"], row["expires"], row["ip"],
                ),
                revoked=True,
            )  # fmt: skip
