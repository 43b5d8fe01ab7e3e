"""What the simulator remembers: accepted messages and per-domain connection counts.

A connection counts for a recipient domain from its first RCPT TO for that domain until the
session ends or the client sends RSET, so a sender holding a connection open for reuse keeps
counting against that domain.
"""

from __future__ import annotations

import base64
import itertools
import time
from dataclasses import dataclass, field
from typing import Any

from postline.simulator.behaviour import domain_of


@dataclass(frozen=True)
class MessageRecord:
    id: int
    arrived: float
    mail_from: str
    rcpt_tos: tuple[str, ...]
    peer: str
    tls: bool
    session_id: int
    helo: str | None
    size: int
    raw: bytes
    mail_path: str = ""  # the MAIL FROM address exactly as sent (quotes kept)
    rcpt_paths: tuple[str, ...] = ()  # the accepted RCPT TO addresses exactly as sent

    @property
    def domains(self) -> tuple[str, ...]:
        return tuple(sorted({domain_of(rcpt) for rcpt in self.rcpt_tos}))

    def to_json(self, *, include_raw: bool = False) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "arrived": self.arrived,
            "mail_from": self.mail_from,
            "rcpt_tos": list(self.rcpt_tos),
            "domains": list(self.domains),
            "peer": self.peer,
            "tls": self.tls,
            "session_id": self.session_id,
            "helo": self.helo,
            "size": self.size,
            "mail_path": self.mail_path,
            "rcpt_paths": list(self.rcpt_paths),
        }
        if include_raw:
            data["raw"] = base64.b64encode(self.raw).decode("ascii")
        return data


@dataclass
class DomainStats:
    messages: int = 0
    recipients: int = 0
    rejected: int = 0
    current_connections: int = 0
    peak_connections: int = 0
    arrivals: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "recipients": self.recipients,
            "rejected": self.rejected,
            "current_connections": self.current_connections,
            "peak_connections": self.peak_connections,
            "arrivals": list(self.arrivals),
        }


class Recorder:
    """Records sessions and messages; used only from the event loop's thread."""

    def __init__(self) -> None:
        self._session_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        # open session id -> recipient domains it currently counts for
        self._sessions: dict[int, set[str]] = {}
        self._sessions_since_reset = 0
        self._peak_connections = 0
        self._domains: dict[str, DomainStats] = {}
        self._messages: list[MessageRecord] = []

    # sessions

    def connection_opened(self) -> int:
        session_id = next(self._session_ids)
        self._sessions[session_id] = set()
        self._sessions_since_reset += 1
        self._peak_connections = max(self._peak_connections, len(self._sessions))
        return session_id

    def connection_closed(self, session_id: int) -> None:
        self.transaction_reset(session_id)
        self._sessions.pop(session_id, None)

    def rcpt_seen(self, session_id: int, domain: str) -> None:
        held = self._sessions.get(session_id)
        if held is None or domain in held:
            return
        held.add(domain)
        stats = self._domain(domain)
        stats.current_connections += 1
        stats.peak_connections = max(stats.peak_connections, stats.current_connections)

    def transaction_reset(self, session_id: int) -> None:
        for domain in self._sessions.get(session_id, set()):
            self._domain(domain).current_connections -= 1
        if session_id in self._sessions:
            self._sessions[session_id] = set()

    def rcpt_rejected(self, domain: str) -> None:
        self._domain(domain).rejected += 1

    # messages

    def message_accepted(
        self,
        *,
        session_id: int,
        mail_from: str,
        rcpt_tos: list[str],
        peer: str,
        tls: bool,
        helo: str | None,
        raw: bytes,
        mail_path: str = "",
        rcpt_paths: list[str] | None = None,
    ) -> MessageRecord:
        record = MessageRecord(
            id=next(self._message_ids),
            arrived=time.time(),
            mail_from=mail_from,
            rcpt_tos=tuple(rcpt_tos),
            peer=peer,
            tls=tls,
            session_id=session_id,
            helo=helo,
            size=len(raw),
            raw=raw,
            mail_path=mail_path,
            rcpt_paths=tuple(rcpt_paths or ()),
        )
        self._messages.append(record)
        for domain in record.domains:
            stats = self._domain(domain)
            stats.messages += 1
            stats.arrivals.append(record.arrived)
        for rcpt in record.rcpt_tos:
            self._domain(domain_of(rcpt)).recipients += 1
        return record

    def messages(
        self,
        *,
        rcpt: str | None = None,
        domain: str | None = None,
        since: float | None = None,
    ) -> list[MessageRecord]:
        """Accepted messages in arrival order; ``since`` keeps those arrived after it."""
        found = self._messages
        if rcpt is not None:
            wanted = rcpt.lower()
            found = [m for m in found if wanted in (r.lower() for r in m.rcpt_tos)]
        if domain is not None:
            wanted_domain = domain.lower()
            found = [m for m in found if wanted_domain in m.domains]
        if since is not None:
            found = [m for m in found if m.arrived > since]
        return list(found)

    def stats(self) -> dict[str, Any]:
        return {
            "total": len(self._messages),
            "recipients": sum(len(m.rcpt_tos) for m in self._messages),
            "connections": {
                "current": len(self._sessions),
                "peak": self._peak_connections,
                "total": self._sessions_since_reset,
            },
            "domains": {name: stats.to_json() for name, stats in sorted(self._domains.items())},
        }

    def reset(self) -> None:
        """Forget messages and counts; connections still open keep counting from now."""
        self._messages.clear()
        self._domains.clear()
        for held in self._sessions.values():
            for domain in held:
                stats = self._domain(domain)
                stats.current_connections += 1
                stats.peak_connections = stats.current_connections
        self._sessions_since_reset = len(self._sessions)
        self._peak_connections = len(self._sessions)

    def _domain(self, domain: str) -> DomainStats:
        stats = self._domains.get(domain)
        if stats is None:
            stats = self._domains[domain] = DomainStats()
        return stats
