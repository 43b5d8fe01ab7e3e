"""What a generated case is, and the steps every MTA module shares: the replies scripted, the
mail sent, its submission (over SMTP, or on a local command line), and the notices collected
and written with their labels.

A case is one message whose failure is made on purpose (a scripted reply of the remote server,
a port where nothing listens, a local limit of the MTA's own settings), so the label of each
recipient is known before the MTA runs. Addresses and subjects carry no word of the failure
(``olga.berg@rowan.test``, ``bulletin-pf-03@sender.test``, "Newsletter 3"): the classifier
must learn the failure from the notice, not from the case's name.
"""

from __future__ import annotations

import functools
import logging
import smtplib
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

import yaml

from .destination import RCPT, Destination, Received, Reply
from .rows import Row

logger = logging.getLogger(__name__)
# libyaml's safe loader where PyYAML has it (the pure-Python one takes minutes for the case
# files together), else PyYAML's own.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

CASES = Path(__file__).resolve().parents[1] / "mta_cases.yaml"
# Round 23's cases: what filters and mailbox servers answer, carried by Postfix and Exim.
FILTER_CASES = CASES.with_name("filter_cases.yaml")
# Round 37's cases: automatic mail that is no failure (auto-replies, receipts, list answers).
AUTO_CASES = CASES.with_name("auto_cases.yaml")
# Round 39's cases: local delivery agents failing behind Postfix, Exim and Sendmail.
LDA_CASES = CASES.with_name("lda_cases.yaml")
# Round 40's cases: the MTA's own failures that are no remote reply (a loop, TLS required).
OWN_CASES = CASES.with_name("own_cases.yaml")
# Round 41's cases: DNS failures of the recipient's domain, through a DNS server of our own.
DNS_CASES = CASES.with_name("dns_cases.yaml")
# Round 42's cases: qmail's notices (notqmail built from source; its qmail-smtpd as a remote).
QMAIL_CASES = CASES.with_name("qmail_cases.yaml")
# Round 43's cases: XMail's notices (an older MTA built from its source, mtas/xmail.py).
XMAIL_CASES = CASES.with_name("xmail_cases.yaml")
# Round 45's cases: policy services and milters run for real behind a receiving Postfix.
POLICY_CASES = CASES.with_name("policy_cases.yaml")
# Round 46's cases: ZMailer's own notices, built from its public repository's snapshot.
ZMAILER_CASES = CASES.with_name("zmailer_cases.yaml")
# Round 47's cases: masqmail's own notices, built from its public repository's snapshot.
MASQMAIL_CASES = CASES.with_name("masqmail_cases.yaml")
# Round 49's cases: chasquid's own notices (Debian 12's package; its MDA behind it).
CHASQUID_CASES = CASES.with_name("chasquid_cases.yaml")
# Round 50's cases: Cyrus IMAP's lmtpd run for real behind Postfix, Exim and Sendmail.
CYRUS_CASES = CASES.with_name("cyrus_cases.yaml")
# Round 51's cases: what a mailing list manager, Mailman 3 core, sends (mtas/mailman3.py).
MAILMAN3_CASES = CASES.with_name("mailman3_cases.yaml")
# Round 53's cases: qmail-smtpd's own replies in Postfix's, Exim's and Sendmail's notices.
QMAIL_SMTPD_CASES = CASES.with_name("qmail_smtpd_cases.yaml")
# Round 53's cases: a null MX and a silent DNS server of the recipient's domain, qmail sending.
DNS_QMAIL_CASES = CASES.with_name("dns_qmail_cases.yaml")
# Round 53's cases: SPF temporary and permanent errors, policyd-spf behind a receiving Postfix.
SPF_CASES = CASES.with_name("spf_cases.yaml")
# Round 52's cases: Sympa's answers to posts and commands (a mailing list manager, run).
SYMPA_CASES = CASES.with_name("sympa_cases.yaml")
# Round 56's cases: qpsmtpd's own replies in Postfix's, Exim's and Sendmail's notices.
QPSMTPD_CASES = CASES.with_name("qpsmtpd_cases.yaml")
# Round 56's cases: mailfromd as a milter behind a receiving Postfix, and its own DSN.
MAILFROMD_CASES = CASES.with_name("mailfromd_cases.yaml")
# Round 55's cases: content filters (clamav-milter, spamass-milter) run for real as milters.
MILTER_CASES = CASES.with_name("milter_cases.yaml")
# Round 57's cases: MIMEDefang run for real as a milter, rspamd's greylisting with Redis.
MIMEDEFANG_CASES = CASES.with_name("mimedefang_cases.yaml")
# Round 58's cases: what the list managers SmartList, Schleuder (and gnarwl) send, run.
SMARTLIST_CASES = CASES.with_name("smartlist_cases.yaml")
SCHLEUDER_CASES = CASES.with_name("schleuder_cases.yaml")
GNARWL_CASES = CASES.with_name("gnarwl_cases.yaml")
# Round 59's cases: Exim's own ACL refusals as the receiving server, in other MTAs' notices.
EXIM_ACL_CASES = CASES.with_name("exim_acl_cases.yaml")
# Round 60's cases: a receiving Postfix's own restrictions and limits, run for real.
RESTRICTION_CASES = CASES.with_name("restriction_cases.yaml")
# Round 61's cases: more Postfix policy daemons (sqlgrey, gross, postfwd, policyd-rate-limit).
POLICY_DAEMONS_CASES = CASES.with_name("policy_daemons_cases.yaml")
# Round 62's cases: GNU Mailutils' mda and lmtpd failing behind Postfix, Exim and Sendmail.
MAILUTILS_CASES = CASES.with_name("mailutils_cases.yaml")
# Round 63's cases: a receiving Sendmail's own checks in Postfix's, Exim's and Sendmail's notices.
SENDMAIL_CHECKS_CASES = CASES.with_name("sendmail_checks_cases.yaml")
# Round 64's cases: a receiving Haraka's own plugins in Postfix's, Exim's and Sendmail's notices.
HARAKA_RECEIVING_CASES = CASES.with_name("haraka_receiving_cases.yaml")
# Round 65's cases: a receiving OpenSMTPD's own rules and filters in other MTAs' notices.
OPENSMTPD_RECEIVING_CASES = CASES.with_name("opensmtpd_receiving_cases.yaml")
# Round 66's cases: a receiving Courier's own checks in Postfix's, Exim's and Sendmail's notices.
COURIER_RECEIVING_CASES = CASES.with_name("courier_receiving_cases.yaml")
# Round 67's cases: SMTP content-filter proxies (clamsmtp, proxsmtp) in front of a receiving
# Postfix, in Postfix's, Exim's and Sendmail's notices.
PROXIES_CASES = CASES.with_name("proxies_cases.yaml")
# Round 68's cases: a receiving Exim's content scanning (spamd, clamd, MIME ACL, sa-exim).
EXIM_CONTENT_CASES = CASES.with_name("exim_content_cases.yaml")
# Round 69's cases: a receiving OpenSMTPD's filter programs (rspamd, senderscore).
OPENSMTPD_FILTERS_CASES = CASES.with_name("opensmtpd_filters_cases.yaml")
# Round 70's cases: content-filter milters behind a receiving Sendmail (clamav-milter, spamass-
# milter, rspamd; a milter down with F=T and F=R), in Postfix's, Exim's and Sendmail's notices.
SENDMAIL_MILTERS_CASES = CASES.with_name("sendmail_milters_cases.yaml")
# Round 75's cases: Mailutils' mda in other languages (its own catalogues) in MTAs' notices.
I18N_CASES = CASES.with_name("i18n_cases.yaml")
# Round 76's cases: older MTAs built from source (XMail, ZMailer) as the receiving server, their
# own refusals in Postfix's, Exim's and Sendmail's notices.
OLDER_RECEIVING_CASES = CASES.with_name("older_receiving_cases.yaml")
# Round 77's cases: what list managers (Sympa, Mailman 3) send in other languages (their own
# catalogues).
LIST_I18N_CASES = CASES.with_name("list_i18n_cases.yaml")
# Round 78's cases: forwarding failures of a receiving Postfix (a mailbox that has moved, loops
# through the sending MTA), in Postfix's, Exim's and Sendmail's notices.
FORWARDING_CASES = CASES.with_name("forwarding_cases.yaml")
GREYLIST_MILTER_CASES = CASES.with_name("greylist_milter_cases.yaml")
# The committed case files whose labels and splits ``run.py --generated`` scores.
CASE_FILES = (
    CASES,
    FILTER_CASES,
    AUTO_CASES,
    LDA_CASES,
    OWN_CASES,
    DNS_CASES,
    QMAIL_CASES,
    XMAIL_CASES,
    POLICY_CASES,
    ZMAILER_CASES,
    MASQMAIL_CASES,
    CHASQUID_CASES,
    CYRUS_CASES,
    MAILMAN3_CASES,
    QMAIL_SMTPD_CASES,
    DNS_QMAIL_CASES,
    SPF_CASES,
    SYMPA_CASES,
    QPSMTPD_CASES,
    MAILFROMD_CASES,
    MILTER_CASES,
    MIMEDEFANG_CASES,
    SMARTLIST_CASES,
    SCHLEUDER_CASES,
    GNARWL_CASES,
    EXIM_ACL_CASES,
    RESTRICTION_CASES,
    POLICY_DAEMONS_CASES,
    MAILUTILS_CASES,
    SENDMAIL_CHECKS_CASES,
    # round 64
    HARAKA_RECEIVING_CASES,
    # round 65 (r65)
    OPENSMTPD_RECEIVING_CASES,
    # round 66
    COURIER_RECEIVING_CASES,
    # round 67
    PROXIES_CASES,
    # round 68
    EXIM_CONTENT_CASES,
    # round 69
    OPENSMTPD_FILTERS_CASES,
    # round 70
    SENDMAIL_MILTERS_CASES,
    # round 75
    I18N_CASES,
    # round 76
    OLDER_RECEIVING_CASES,
    # round 77
    LIST_I18N_CASES,
    # round 78
    FORWARDING_CASES,
    # round 79
    GREYLIST_MILTER_CASES,
)

FAILED = "failed"
DEFERRED = "deferred"


@dataclass(frozen=True)
class Label:
    """``status`` None: the mail is no bounce (an automatic answer, a receipt; round 37), and
    ``delivery`` None with it."""

    status: int | None
    delivery: str | None
    note: str


@dataclass(frozen=True)
class Case:
    """``failed`` labels the recipients of the MTA's final failure notice (``<name>.eml``);
    ``delayed`` those of its delay warning (``<name>-delay.eml``), which comes first, when the
    case is one the MTA retries. Recipients in neither are delivered and get no row. A case
    whose one answer is no bounce (an automatic reply, a receipt; round 37) labels it under
    ``answered`` in the case file, read into ``failed`` (the file is ``<name>.eml`` too) with
    a null status; an answer that names no address of Postline's is keyed ``~`` (None)."""

    name: str
    sender: str
    recipients: tuple[str, ...]
    failed: dict[str, Label]
    delayed: dict[str, Label] = field(default_factory=dict)
    scripts: dict[str, Reply] = field(default_factory=dict)
    size: int = 0  # the body is padded to about this many bytes
    delivered: tuple[str, ...] = ()  # recipients the remote server must have taken
    # replies scripted once the MTA's first try has had its answer (a temporary reply, then a
    # permanent one: round 33's Haraka); only a module that can tell the first try uses it
    later: dict[str, Reply] = field(default_factory=dict)
    notify: str = ""  # RCPT TO's NOTIFY= parameter (RFC 3461), e.g. SUCCESS (round 37)
    # header lines put above the message's own, e.g. a Delivered-To: that makes a loop (round 40)
    headers: tuple[str, ...] = ()
    # lines put at the end of the message's body, e.g. a test string a filter detects (round 55)
    body: tuple[str, ...] = ()

    @property
    def notices(self) -> int:
        return (1 if self.failed else 0) + (1 if self.delayed else 0)


def splits(path: Path | None = None) -> dict[str, str]:
    """The split each MTA's generated rows belong to (``split`` in ``path``, or in every
    committed case file)."""
    found: dict[str, str] = {}
    for each in (path,) if path else CASE_FILES:
        data = _parsed(each)
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
        data = _parsed(each)
        if data.get(mta):
            return [_case(entry) for entry in data[mta]]
    return []


def _parsed(path: Path) -> dict[str, Any]:
    """A case file's YAML, parsed once for each version of the file (its path, size and
    modification time): ``committed`` and ``load`` read every case file for every MTA."""
    stat = path.stat()
    return _parse(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=128)
def _parse(path: Path, size: int, mtime_ns: int) -> dict[str, Any]:
    data: dict[str, Any] = yaml.load(path.read_text("utf-8"), Loader=_LOADER)
    return data


def _case(entry: dict[str, Any]) -> Case:
    def labels(key: str) -> dict[str, Label]:
        return {
            a: Label(v["status"], v["delivery"], v["note"])
            for a, v in (entry.get(key) or {}).items()
        }

    answered = labels("answered")
    if any(label.status is not None or label.delivery is not None for label in answered.values()):
        raise ValueError(f"{entry['case']}: an answer is no bounce (status, delivery null)")

    return Case(
        name=entry["case"],
        sender=entry["sender"],
        recipients=tuple(entry["to"]),
        failed=labels("failed") | answered,
        delayed=labels("delayed"),
        scripts={
            a: Reply(v["reply"], v.get("stage", RCPT))
            for a, v in (entry.get("scripts") or {}).items()
        },
        size=entry.get("size", 0),
        delivered=tuple(entry.get("delivered") or ()),
        later={
            a: Reply(v["reply"], v.get("stage", RCPT))
            for a, v in (entry.get("later") or {}).items()
        },
        notify=entry.get("notify", ""),
        headers=tuple(entry.get("headers") or ()),
        body=tuple(entry.get("body") or ()),
    )


def script_replies(destination: Destination, cases: list[Case]) -> None:
    for case in cases:
        for address, reply in case.scripts.items():
            destination.script(address, reply)


def message(case: Case, number: int, command: str | None = None) -> bytes:
    """Case ``number``'s message (CRLF lines): a newsletter, or with ``command`` (a list
    manager's, rounds 52 and 58) a message whose subject and one body line are that command."""
    if command is None:
        body = (
            f"Hello,\r\n\r\nthis is issue {number} of our newsletter.\r\n"
            "Read it in your browser: https://news.sender.test/issues\r\n"
        )
        padding = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod.\r\n"
        while len(body) < case.size:
            body += padding
        body += "".join(f"{line}\r\n" for line in case.body)
    else:
        body = f"{command}\r\n"
    # a case that gives its own Content-Type (a multipart message, round 68) has it alone; the
    # newsletter text is then the multipart's preamble
    own_type = any(h.lower().startswith("content-type:") for h in case.headers)
    headers = [
        *case.headers,
        f"From: Newsletter <{case.sender}>",
        f"To: {', '.join(case.recipients)}",
        f"Subject: {command}" if command is not None else f"Subject: Newsletter {number}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {make_msgid(domain='sender.test')}",
        "MIME-Version: 1.0",
        *([] if own_type else ["Content-Type: text/plain; charset=us-ascii"]),
    ]
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("ascii")


def submit(host: str, port: int, cases: list[Case]) -> None:
    """Hand every case's message to the MTA under test over SMTP, one transaction each."""
    with smtplib.SMTP(host, port, timeout=30) as client:
        client.ehlo("app.sender.test")
        for number, case in enumerate(cases, start=1):
            options = [f"NOTIFY={case.notify}"] if case.notify else []
            refused = client.sendmail(
                case.sender, list(case.recipients), message(case, number), rcpt_options=options
            )
            if refused:
                logger.warning("%s: the MTA refused %s at submission", case.name, refused)


def submit_locally(
    command: Sequence[str],
    case: Case,
    number: int,
    lf: bool = False,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> None:
    """Hand ``case``'s message to the MTA as an application does, on ``command``'s standard
    input (its ``sendmail``); with ``lf``, in LF lines, as a local program hands them over."""
    raw = message(case, number)
    if lf:
        raw = raw.replace(b"\r\n", b"\n")
    done = subprocess.run(
        [*command, "-f", case.sender, *case.recipients], input=raw, env=env,
        capture_output=True, timeout=timeout,
    )  # fmt: skip
    if done.returncode != 0:
        logger.warning("%s: refused on the command line (%s): %s", case.name, done.returncode,
                       done.stderr)  # fmt: skip


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
            rows += labelled(f"{mta}/{stem}.eml", labels, mta, mta_version, split)
    return rows


def relayed(
    destination: Destination,
    cases: list[Case],
    out: Path,
    mta: str,
    mta_version: str,
    deadline: float,
) -> list[Row]:
    """As :func:`collect`, for an MTA that sends its notices to its smart host (the scripted
    server) rather than to the sender's domain: each case's one notice is what that server took
    for its sender, with the Return-Path a final delivery adds (the capture server's shape)."""
    split = splits().get(mta, "unseen")
    rows: list[Row] = []
    for case in cases:
        while not destination.delivered(case.sender) and time.monotonic() < deadline:
            time.sleep(0.2)
        got = destination.delivered(case.sender)
        if len(got) != 1:
            logger.warning("%s: %s notices came, not one; left out", case.name, len(got))
            continue
        missing = [a for a in case.delivered if not destination.delivered(a)]
        if missing:
            logger.warning("%s: %s not delivered as built; left out", case.name, missing)
            continue
        return_path = "" if got[0].mail_from in ("<>", "None") else got[0].mail_from
        raw = f"Return-Path: <{return_path}>\r\n".encode() + got[0].raw
        (out / f"{case.name}.eml").write_bytes(raw)
        rows += labelled(f"{mta}/{case.name}.eml", case.failed, mta, mta_version, split)
    return rows


def labelled(
    file: str, labels: dict[str, Label], mta: str, mta_version: str, split: str
) -> list[Row]:
    return [
        Row(file=file, recipient=recipient, status=label.status, delivery=label.delivery,
            note=label.note, mta=mta, mta_version=mta_version, split=split)
        for recipient, label in labels.items()
    ]  # fmt: skip
