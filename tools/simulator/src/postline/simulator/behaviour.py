"""How the simulator answers, chosen by the local part of each recipient.

The table below is the whole behaviour: a local part (case-insensitive, any ``+tag`` ignored)
maps to a rule. Every other local part is accepted.
"""

from __future__ import annotations

from dataclasses import dataclass

REPLY_OK = "250 OK"
REPLY_RCPT_OK = "250 2.1.5 OK"
REPLY_QUEUED = "250 2.0.0 OK: queued as {message_id}"
REPLY_USER_UNKNOWN = "550 5.1.1 <{address}>: Recipient address rejected: User unknown"
REPLY_MAILBOX_FULL = "552 5.2.2 <{address}>: Mailbox full"
REPLY_GREYLISTED = "451 4.7.1 Greylisted, try again later"
REPLY_SPAM = "554 5.7.1 Message rejected as spam"
REPLY_TEMPFAIL = "421 4.4.2 try again later"
REPLY_INTERNAL_ERROR = "451 4.3.0 Internal simulator error, try again later"


# Broken servers (``Rule.fault``): what a sender must survive.
HANG = "hang"  # RCPT TO is never answered (the connection stays open)
GARBAGE = "garbage"  # RCPT TO is answered with bytes that are no SMTP reply, then closed
DROP = "drop"  # the message is taken (and recorded), then the connection drops: no reply
GARBAGE_REPLY = b"\x00\xff\xfeHTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\n\x1b[0m\x00"


@dataclass(frozen=True)
class Rule:
    """What one local part does.

    ``rcpt_reply`` answers RCPT TO (formatted with ``address``); ``first_attempt_only`` makes
    that answer (or the fault) apply only the first time an address is seen (greylisting);
    ``slow_data`` delays the answer to DATA; ``fault`` makes the server misbehave.
    """

    rcpt_reply: str | None = None
    first_attempt_only: bool = False
    slow_data: bool = False
    fault: str | None = None


RULES: dict[str, Rule] = {
    "user-unknown": Rule(rcpt_reply=REPLY_USER_UNKNOWN),
    "mailbox-full": Rule(rcpt_reply=REPLY_MAILBOX_FULL),
    "greylist": Rule(rcpt_reply=REPLY_GREYLISTED, first_attempt_only=True),
    "reject": Rule(rcpt_reply=REPLY_SPAM),
    "tempfail": Rule(rcpt_reply=REPLY_TEMPFAIL),
    "slow": Rule(slow_data=True),
    # The first attempt to an address meets the broken server, the next ones a working one.
    "hang": Rule(fault=HANG, first_attempt_only=True),
    "garbage": Rule(fault=GARBAGE, first_attempt_only=True),
    "drop": Rule(fault=DROP, first_attempt_only=True),
    # Broken every time.
    "hang-always": Rule(fault=HANG),
    "garbage-always": Rule(fault=GARBAGE),
    "drop-always": Rule(fault=DROP),
}

ACCEPT = Rule()


def split_address(address: str) -> tuple[str, str]:
    """Return ``(local part, domain)`` of an address, both lower-cased."""
    local, _, domain = address.rpartition("@")
    if not local:
        return domain.lower(), ""
    return local.lower(), domain.lower()


def domain_of(address: str) -> str:
    return split_address(address)[1]


def rule_for(address: str) -> Rule:
    local, _ = split_address(address)
    base = local.strip('"').split("+", 1)[0]
    return RULES.get(base, ACCEPT)


class Behaviour:
    """Applies :data:`RULES`, keeping the greylist state (per recipient address)."""

    def __init__(self) -> None:
        self._greylist_seen: set[str] = set()
        self._faults_seen: set[str] = set()

    def rcpt_reply(self, address: str) -> str | None:
        """The rejection to answer RCPT TO with, or ``None`` to accept the recipient."""
        rule = rule_for(address)
        if rule.rcpt_reply is None:
            return None
        if rule.first_attempt_only and not _first_time(self._greylist_seen, address):
            return None
        return rule.rcpt_reply.format(address=address)

    def fault(self, address: str) -> str | None:
        """How the server breaks at this recipient (``HANG``, ``GARBAGE``, ``DROP``), or None."""
        rule = rule_for(address)
        if rule.fault is None:
            return None
        if rule.first_attempt_only and not _first_time(self._faults_seen, address):
            return None
        return rule.fault

    def is_slow(self, address: str) -> bool:
        return rule_for(address).slow_data

    def reset(self) -> None:
        self._greylist_seen.clear()
        self._faults_seen.clear()


def _first_time(seen: set[str], address: str) -> bool:
    key = address.lower()
    if key in seen:
        return False
    seen.add(key)
    return True
