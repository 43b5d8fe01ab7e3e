"""What a generated case is, and the steps every MTA module shares: the mail sent, its
submission over SMTP, and the notices collected and written with their labels.

A case is one message whose failure is made on purpose (a scripted reply of the remote server,
a port where nothing listens, a local limit of the MTA's own settings), so the label of each
recipient is known before the MTA runs. Addresses and subjects carry no word of the failure
(``olga.berg@rowan.test``, ``bulletin-pf-03@sender.test``, "Newsletter 3"): the classifier
must learn the failure from the notice, not from the case's name.
"""

from __future__ import annotations

import logging
import smtplib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import yaml

from .destination import RCPT, Destination, Received, Reply
from .rows import Row

logger = logging.getLogger(__name__)

CASES = Path(__file__).resolve().parents[1] / "mta_cases.yaml"
# Round 23's cases: what filters and mailbox servers answer, carried by Postfix and Exim.
FILTER_CASES = CASES.with_name("filter_cases.yaml")
# The committed case files whose labels and splits ``run.py --generated`` scores.
CASE_FILES = (CASES, FILTER_CASES)

FAILED = "failed"
DEFERRED = "deferred"


@dataclass(frozen=True)
class Label:
    status: int
    delivery: str
    note: str


@dataclass(frozen=True)
class Case:
    """``failed`` labels the recipients of the MTA's final failure notice (``<name>.eml``);
    ``delayed`` those of its delay warning (``<name>-delay.eml``), which comes first, when the
    case is one the MTA retries. Recipients in neither are delivered and get no row."""

    name: str
    sender: str
    recipients: tuple[str, ...]
    failed: dict[str, Label]
    delayed: dict[str, Label] = field(default_factory=dict)
    scripts: dict[str, Reply] = field(default_factory=dict)
    size: int = 0  # the body is padded to about this many bytes
    delivered: tuple[str, ...] = ()  # recipients the remote server must have taken

    @property
    def notices(self) -> int:
        return (1 if self.failed else 0) + (1 if self.delayed else 0)


def splits(path: Path | None = None) -> dict[str, str]:
    """The split each MTA's generated rows belong to (``split`` in ``path``, or in every
    committed case file)."""
    found: dict[str, str] = {}
    for each in (path,) if path else CASE_FILES:
        data = yaml.safe_load(each.read_text("utf-8"))
        found.update(data.get("split") or {})
    return found


def committed(path: Path | None = None) -> dict[tuple[str, str], Label]:
    """Every committed label by (file relative to the generated folder, address): what
    ``run.py --generated`` scores, whatever a generated ``labels.jsonl`` says."""
    found = {}
    for mta in splits(path):
        for case in load(mta, path):
            for address, label in case.failed.items():
                found[(f"{mta}/{case.name}.eml", address)] = label
            for address, label in case.delayed.items():
                found[(f"{mta}/{case.name}-delay.eml", address)] = label
    return found


def load(mta: str, path: Path | None = None) -> list[Case]:
    """The cases of one MTA, as ``path`` (or the committed case file that has them) labels
    them."""
    for each in (path,) if path else CASE_FILES:
        data = yaml.safe_load(each.read_text("utf-8"))
        if data.get(mta):
            return [_case(entry) for entry in data[mta]]
    return []


def _case(entry: dict[str, Any]) -> Case:
    def labels(key: str) -> dict[str, Label]:
        return {
            a: Label(v["status"], v["delivery"], v["note"])
            for a, v in (entry.get(key) or {}).items()
        }

    return Case(
        name=entry["case"],
        sender=entry["sender"],
        recipients=tuple(entry["to"]),
        failed=labels("failed"),
        delayed=labels("delayed"),
        scripts={
            a: Reply(v["reply"], v.get("stage", RCPT))
            for a, v in (entry.get("scripts") or {}).items()
        },
        size=entry.get("size", 0),
        delivered=tuple(entry.get("delivered") or ()),
    )


def message(case: Case, number: int) -> bytes:
    body = (
        f"Hello,\r\n\r\nthis is issue {number} of our newsletter.\r\n"
        "Read it in your browser: https://news.sender.test/issues\r\n"
    )
    padding = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
    while len(body) < case.size:
        body += padding
    headers = [
        f"From: Newsletter <{case.sender}>",
        f"To: {', '.join(case.recipients)}",
        f"Subject: Newsletter {number}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {make_msgid(domain='sender.test')}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("ascii")


def submit(host: str, port: int, cases: list[Case]) -> None:
    """Hand every case's message to the MTA under test over SMTP, one transaction each."""
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.ehlo("app.sender.test")
        for number, case in enumerate(cases, start=1):
            refused = client.sendmail(case.sender, list(case.recipients), message(case, number))
            if refused:
                logger.warning("%s: the MTA refused %s at submission", case.name, refused)


def collect(
    destination: Destination,
    cases: list[Case],
    out: Path,
    mta: str,
    mta_version: str,
    timeout: float,
) -> list[Row]:
    """Wait (until ``timeout`` seconds from now) for each case's notices, write them to
    ``out`` and return their rows. A case whose notices did not all come gets no row."""
    split = splits().get(mta, "unseen")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(len(destination.notices(c.sender)) >= c.notices for c in cases):
            break
        time.sleep(0.5)
    rows: list[Row] = []
    for case in cases:
        got = destination.notices(case.sender)
        if len(got) < case.notices:
            logger.warning("%s: %s of %s notices came; left out", case.name, len(got), case.notices)
            continue
        missing = [a for a in case.delivered if not destination.delivered(a)]
        if missing:
            logger.warning("%s: %s not delivered as built; left out", case.name, missing)
            continue
        parts: list[tuple[str, Received, dict[str, Label]]] = []
        if case.delayed:
            parts.append((f"{case.name}-delay", got[0], case.delayed))
        if case.failed:
            parts.append((case.name, got[-1], case.failed))
        for stem, notice, labels in parts:
            (out / f"{stem}.eml").write_bytes(notice.raw)
            for recipient, label in labels.items():
                rows.append(
                    Row(
                        file=f"{mta}/{stem}.eml",
                        recipient=recipient,
                        status=label.status,
                        delivery=label.delivery,
                        note=label.note,
                        mta=mta,
                        mta_version=mta_version,
                        split=split,
                    )
                )
    return rows
