"""Realistic reports events for the benchmark: 30 days of deliveries, in the order they happen.

Per delivery: a ``queued`` event, attempts a second or so later, deferrals retried ten
minutes apart; 5,000 destination domains with a Zipf (1/rank) share, so a few large providers
carry most of the mail and a long tail a little each; a day-and-night rhythm; three API users
on two servers; the status mix below (per thousand deliveries). Failures carry an
``ErrorClassified`` as the bounce service emits it, and 0.3 % of successes get a bounce mail
hours later.

Events come out hour by hour, each in the hour it happens (a retry ten minutes later may land
in the next hour), so ingest sees batches like a running system's.
"""

from __future__ import annotations

import random
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate

from postline.common.timeutil import to_timestamp
from postline.v1 import events_pb2

HOUR = 3600.0
DOMAINS = 5000
BIG_DOMAINS = (
    "gmail.com", "docomo.ne.jp", "yahoo.co.jp", "ezweb.ne.jp", "icloud.com", "softbank.ne.jp",
    "outlook.com", "i.softbank.jp", "au.com", "hotmail.com", "yahoo.com", "outlook.jp",
)  # fmt: skip
BIG_MX = {
    "gmail.com": "gmail-smtp-in.l.google.com",
    "icloud.com": "mx01.mail.icloud.com",
    "outlook.com": "outlook-com.olc.protection.outlook.com",
    "hotmail.com": "hotmail-com.olc.protection.outlook.com",
    "outlook.jp": "outlook-jp.olc.protection.outlook.com",
}
# UTC hours weighted for senders in Japan (UTC+9): quiet at night, busy in the morning and
# the evening.
HOUR_WEIGHTS = (
    6, 8, 9, 8, 7, 6, 5, 5, 6, 8, 10, 11, 12, 10, 6, 3, 2, 1, 1, 1, 1, 2, 3, 5,
)  # fmt: skip
USERS = (("default", "dev", 50), ("default", "app", 20), ("campaigns", "campaign-tool", 30))
LOCAL_PARTS = (
    "taro", "hanako", "yamada", "suzuki", "k.sato", "info", "support", "john.smith", "mary",
    "tanaka_ichiro", "user", "shop-news", "a.ito", "watanabe", "kobayashi",
)  # fmt: skip
SUBJECTS = (
    "Your order #{n} has shipped",
    "Password reset",
    "ご注文ありがとうございます（注文番号 {n}）",
    "Invoice {n}, November",
    'Weekly "picks" for you',
    "セール開催中！最大50%OFF",
    "Your receipt\nfor order {n}",
)


@dataclass(frozen=True)
class Outcome:
    """What happens to a delivery: replies of its attempts, then the final state."""

    per_mille: int
    attempts: tuple[tuple[int, str, str], ...]  # (reply code, enhanced status, text) each
    final: str  # succeeded | failed
    error_status: int = 0


OUTCOMES = (
    Outcome(880, ((250, "2.0.0", "250 2.0.0 OK queued"),), "succeeded"),
    Outcome(
        50,
        ((451, "4.7.1", "451 4.7.1 Greylisted, try again later"), (250, "2.0.0", "250 2.0.0 OK")),
        "succeeded",
    ),
    Outcome(
        10,
        (
            (421, "4.7.0", "421 4.7.0 Too many connections"),
            (421, "4.7.0", "421 4.7.0 Too many connections"),
            (250, "2.0.0", "250 2.0.0 OK"),
        ),
        "succeeded",
    ),
    Outcome(35, ((550, "5.1.1", "550 5.1.1 User unknown"),), "failed", 2),
    Outcome(10, ((554, "5.7.1", "554 5.7.1 Message rejected as spam"),), "failed", 4),
    Outcome(5, ((552, "5.2.2", "552 5.2.2 Mailbox full"),), "failed", 5),
    Outcome(3, ((0, "", "Host or domain name not found"),), "failed", 1),
    Outcome(
        7,
        (
            (421, "4.4.2", "421 4.4.2 Connection timed out"),
            (421, "4.4.2", "421 4.4.2 Connection timed out"),
            (421, "4.4.2", "421 4.4.2 Connection timed out"),
        ),
        "failed",
        3,
    ),
)
STATUS = {
    "queued": events_pb2.DELIVERY_STATUS_QUEUED,
    "deferred": events_pb2.DELIVERY_STATUS_DEFERRED,
    "succeeded": events_pb2.DELIVERY_STATUS_SUCCEEDED,
    "failed": events_pb2.DELIVERY_STATUS_FAILED,
}
BOUNCE_AFTER_SUCCESS = 0.003
EVENTS_PER_DELIVERY = 2.16  # measured mean of the mix, errors included

Event = events_pb2.DeliveryEvent | events_pb2.ErrorClassified


class Generator:
    def __init__(self, end: float, days: int = 30, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.start = (end // HOUR) * HOUR - days * 24 * HOUR
        self.end = end
        self.domains = [*BIG_DOMAINS, *(f"mail{r}.example.jp" for r in range(DOMAINS - 12))]
        self.domain_weights = list(accumulate(1.0 / r for r in range(1, DOMAINS + 1)))
        self.senders = [f"news{i}@shop{i % 7}.example.test" for i in range(60)]
        self.sender_weights = list(accumulate(1.0 / r for r in range(1, 61)))
        self.outcome_weights = list(accumulate(o.per_mille for o in OUTCOMES))
        self.user_weights = list(accumulate(w for _, _, w in USERS))
        self.serial = 0

    def mx_for(self, domain: str) -> str:
        return BIG_MX.get(domain) or f"mx{zlib.crc32(domain.encode()) % 3}.{domain}"

    def hours(self) -> Iterator[float]:
        at = self.start
        while at < self.end:
            yield at
            at += HOUR

    def events(self, total: int) -> Iterator[list[Event]]:
        """About ``total`` events, one list per hour of the range, in time order."""
        hours = list(self.hours())
        weights = [HOUR_WEIGHTS[int(h // HOUR) % 24] for h in hours]
        scale = total / EVENTS_PER_DELIVERY / sum(weights)
        later: dict[int, list[tuple[float, Event]]] = defaultdict(list)
        for hour, weight in zip(hours, weights, strict=True):
            for _ in range(round(weight * scale)):
                accepted = hour + self.rng.random() * HOUR
                for at, event in self.delivery(accepted):
                    later[int(at // HOUR)].append((at, event))
            due = later.pop(int(hour // HOUR), [])
            due.sort(key=lambda item: item[0])
            yield [event for at, event in due if at <= self.end]

    def delivery(self, accepted: float) -> list[tuple[float, Event]]:
        rng = self.rng
        self.serial += 1
        n = self.serial
        domain = rng.choices(self.domains, cum_weights=self.domain_weights)[0]
        server, api_user, _ = rng.choices(USERS, cum_weights=self.user_weights)[0]
        outcome = rng.choices(OUTCOMES, cum_weights=self.outcome_weights)[0]
        local = f"{rng.choice(LOCAL_PARTS)}{rng.randrange(100000)}"
        base = {
            "delivery_id": f"{n:016x}{rng.getrandbits(64):016x}",
            "message_id": f"m{n:014x}",
            "accepted_at": to_timestamp(accepted),
            "server": server,
            "api_user": api_user,
            "envelope_from": rng.choices(self.senders, cum_weights=self.sender_weights)[0],
            "recipient": f"{local}@{domain}",
            "recipient_domain": domain,
            "subject": rng.choice(SUBJECTS).format(n=n % 1000000),
            "api_data": f"campaign={n % 97}" if server == "campaigns" else "",
            "return_path": f"b-{n:x}@bounce.example.test",
            "header_message_id": f"<m{n:x}@example.test>",
            "trace_id": f"{rng.getrandbits(128):032x}",
        }
        out: list[tuple[float, Event]] = [(accepted, self._event(base, "queued", accepted))]
        at = accepted + 0.3 + rng.random() * 2
        mx = self.mx_for(domain)
        for attempt, (code, enhanced, text) in enumerate(outcome.attempts, start=1):
            last = attempt == len(outcome.attempts)
            status = outcome.final if last and outcome.final == "succeeded" else "deferred"
            if last and outcome.final == "failed" and outcome.error_status != 3:
                status = "failed"
            fields = {
                "attempt": attempt,
                "reply_code": code,
                "enhanced_status": enhanced,
                "reason": text,
                "mx_host": mx if code else "",
                "source_ip": f"192.0.2.{n % 4 + 10}",
            }
            if status == "deferred":
                fields["next_attempt_at"] = to_timestamp(at + 600)
            if status == "failed":
                fields["error_status"] = outcome.error_status
            out.append((at, self._event(base, status, at, **fields)))
            if status == "failed":
                out.append((at + 0.05, self._error(base, outcome.error_status, at + 0.05, text)))
            at += 600 if status == "deferred" else 0
        if outcome.error_status == 3:  # the resend period ran out after the last deferral
            out.append(
                (at, self._event(base, "failed", at, error_status=3, reason="resend timeout"))
            )
            out.append((at + 0.05, self._error(base, 3, at + 0.05, "resend period exceeded")))
        if outcome.final == "succeeded" and rng.random() < BOUNCE_AFTER_SUCCESS:
            bounced = at + HOUR * (1 + rng.random() * 6)
            out.append((bounced, self._error(base, 2, bounced, "550 5.1.1 mailbox disabled")))
        return out

    def _event(
        self, base: dict[str, object], status: str, at: float, **fields: object
    ) -> events_pb2.DeliveryEvent:
        self.serial += 1
        return events_pb2.DeliveryEvent(
            event_id=f"e{self.serial:015x}",
            status=STATUS[status],
            at=to_timestamp(at),
            **base,  # type: ignore[arg-type]
            **fields,  # type: ignore[arg-type]
        )

    def _error(
        self, base: dict[str, object], status: int, at: float, reason: str
    ) -> events_pb2.ErrorClassified:
        self.serial += 1
        return events_pb2.ErrorClassified(
            event_id=f"x{self.serial:015x}",
            delivery_id=str(base["delivery_id"]),
            message_id=str(base["message_id"]),
            created=to_timestamp(at),
            status=status,  # type: ignore[arg-type]
            to=str(base["recipient"]),
            header_message_id=str(base["header_message_id"]),
            return_path=str(base["return_path"]),
            subject=str(base["subject"]),
            api_data=str(base["api_data"]),
            reason=reason,
            source=events_pb2.ERROR_SOURCE_SMTP_REPLY
            if status != 3
            else events_pb2.ERROR_SOURCE_POLICY,
            permanent=True,
            server=str(base["server"]),
            api_user=str(base["api_user"]),
            trace_id=str(base["trace_id"]),
            **{"from": str(base["envelope_from"])},
        )
