"""RFC 3464 delivery status fields: per-message and per-recipient blocks.

The fields are read line by line rather than block by block, because many MTAs bend the
format (no blank line between recipients, fields in a text/plain part, Original-Recipient
after Final-Recipient, addresses without their ``rfc822;`` type).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)[ \t]*:[ \t]*(.*)$")
_ADDR = re.compile(r"<?((?:\"[^\"]{0,256}\"|[^\s<>;\"]{1,256})@[^\s<>;\"]+?)>?[.,;]?$")
# A field's value is read up to this many characters: report fields are short, and a huge
# one (hostile or broken) must not make parsing slow.
MAX_FIELD = 8 * 1024
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")

_RECIPIENT_FIELDS = frozenset({"final-recipient", "original-recipient", "x-actual-recipient"})


@dataclass
class DsnRecipient:
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        for name in ("final-recipient", "x-actual-recipient", "original-recipient"):
            address = typed_address(self.fields.get(name, ""))
            # A source route ("@relay:user@host") or a bare host is the MTA's internal
            # form; the Original-Recipient is then the address the sender used.
            if address and "." in address.rpartition("@")[2] and ":" not in address:
                return address
        return typed_address(self.fields.get("final-recipient", ""))

    @property
    def original_address(self) -> str:
        return typed_address(self.fields.get("original-recipient", ""))

    @property
    def action(self) -> str:
        return self.fields.get("action", "").split()[0].lower() if self.fields.get("action") else ""

    @property
    def status(self) -> str:
        match = _STATUS.search(self.fields.get("status", ""))
        return match.group(1) if match else ""

    @property
    def diagnostic(self) -> tuple[str, str]:
        """(diagnostic-type, text) of Diagnostic-Code; type lowercased."""
        value = self.fields.get("diagnostic-code", "")
        kind, sep, text = value.partition(";")
        if sep and " " not in kind.strip():
            return kind.strip().lower(), text.strip()
        return "", value.strip()

    @property
    def remote_mta(self) -> str:
        value = self.fields.get("remote-mta", "")
        return value.partition(";")[2].strip() if ";" in value else value.strip()


@dataclass
class DsnReport:
    message_fields: dict[str, str] = field(default_factory=dict)
    recipients: list[DsnRecipient] = field(default_factory=list)


def queued_hours(arrival: str, until: str) -> float:
    """Hours between two RFC 5322 dates (Arrival-Date and the last attempt or the notice's
    Date); 0 when either is missing or unreadable, or they are out of order."""
    start, end = _date(arrival), _date(until)
    if start is None or end is None:
        return 0.0
    try:
        return max(0.0, (end - start).total_seconds() / 3600)
    except TypeError:  # one date with a zone, the other without
        return 0.0


def _date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        return parsedate_to_datetime(value.split(";")[-1].strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def typed_address(value: str) -> str:
    """``rfc822; <user@example.org>`` -> ``user@example.org`` ('' when not an address)."""
    kind, sep, rest = value.partition(";")
    text = (rest if sep else kind).strip()
    match = _ADDR.search(text)
    return match.group(1).strip("<>").strip(".") if match else ""


def _blocks(text: str) -> list[list[tuple[str, str]]]:
    """Blank-line separated blocks of fields, continuation lines unfolded."""
    blocks: list[list[tuple[str, str]]] = []
    fields: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            if fields:
                blocks.append(fields)
                fields = []
            continue
        if line[:1] in " \t" and fields:
            name, value = fields[-1]
            if len(value) < MAX_FIELD:
                fields[-1] = (name, f"{value} {line.strip()}"[:MAX_FIELD])
            continue
        match = _FIELD.match(line)
        if match is not None:
            fields.append((match.group(1).lower(), match.group(2).strip()[:MAX_FIELD]))
    if fields:
        blocks.append(fields)
    return blocks


def parse_fields(text: str) -> DsnReport:
    report = DsnReport()
    for fields in _blocks(text):
        if not any(name in _RECIPIENT_FIELDS for name, _ in fields):
            # Per-message fields (or a block that belongs to no recipient).
            for name, value in fields:
                report.message_fields.setdefault(name, value)
            continue
        # A recipient's fields may come in any order (Action before Final-Recipient), and
        # some MTAs put several recipients in one block: a recipient field seen again starts
        # the next.
        current: DsnRecipient | None = None
        pending: dict[str, str] = {}
        for name, value in fields:
            if name in _RECIPIENT_FIELDS:
                if current is None or name in current.fields:
                    current = DsnRecipient(dict(pending))
                    pending = {}
                    report.recipients.append(current)
                current.fields.setdefault(name, value)
            elif current is None:
                pending.setdefault(name, value)
            else:
                current.fields.setdefault(name, value)
    return report
