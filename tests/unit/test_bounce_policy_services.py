"""Policy services and milters run for real (issue #16, round 45): what postgrey,
postfix-policyd-spf-python, policyd-weight, Postfix's reject_rbl_client, OpenDKIM and OpenDMARC
answered behind a receiving Postfix, as the harness's Postfix wrote it in its notices, and the
failure reports OpenDMARC and OpenDKIM sent (``bench/bounce_accuracy/mtas/policy_postfix.py``;
trimmed, domains and dates changed); the DNS server's TXT records they were served; the case
file. The round's set was classified right at its one measurement (no rule was written for
it): these tests hold that behaviour, so a later rule cannot turn a refusal into a dead address
or a feedback report into a bounce unnoticed.
"""

from __future__ import annotations

import struct

import pytest

from bench.bounce_accuracy.mtas.cases import POLICY_CASES, load
from bench.bounce_accuracy.mtas.dnsserver import NOERROR, Name, Table
from postline.bounce.classify import classify_failure
from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set

TXT = 16
KEY = "v=DKIM1; k=rsa; p=" + "A" * 300  # longer than one DNS character-string (255 bytes)
TABLE = Table(
    {
        "example.org": Name((("TXT", "v=spf1 ip4:192.0.2.1 -all"),)),
        "sel._domainkey.example.org": Name((("TXT", KEY),)),
        "2.0.0.127.dnsbl.example": Name((("A", "127.0.0.2"), ("TXT", "listed"))),
    }
)


def _query(name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def _txt(name: str) -> list[str]:
    """The TXT records of the table's reply to ``name``, each its strings joined."""
    query = _query(name, TXT)
    reply = TABLE.answer(query)
    assert reply is not None
    _, flags, _, answers, _, _ = struct.unpack("!HHHHHH", reply[:12])
    assert flags & 0x0F == NOERROR
    at, found = len(query), []
    for _ in range(answers):
        while reply[at]:
            at += 1 + reply[at]
        kind, _, _, size = struct.unpack("!HHIH", reply[at + 1 : at + 11])
        assert kind == TXT
        rdata, strings = reply[at + 11 : at + 11 + size], []
        while rdata:
            strings.append(rdata[1 : 1 + rdata[0]].decode())
            rdata = rdata[1 + rdata[0] :]
        found.append("".join(strings))
        at += 11 + size
    return found


def test_the_dns_server_answers_txt_records_in_strings_of_at_most_255_bytes() -> None:
    assert _txt("example.org") == ["v=spf1 ip4:192.0.2.1 -all"]
    assert _txt("sel._domainkey.example.org") == [KEY]  # cut in two strings, joined back
    assert _txt("2.0.0.127.dnsbl.example") == ["listed"]  # the A record is not a TXT's answer


def test_the_policy_cases_are_a_committed_set_of_their_own() -> None:
    assert_committed_set(
        POLICY_CASES,
        ("policy_postfix", "policy_exim", "policy_sendmail"),
        cases=(10, 10, 9),
        rows=(11, 11, 10),
        senders=29,
    )


@pytest.mark.parametrize("mta", ["policy_postfix", "policy_exim", "policy_sendmail"])
def test_the_reports_are_labelled_no_bounce_and_every_refusal_4(mta: str) -> None:
    cases = load(mta, POLICY_CASES)
    reports = [case for case in cases if not case.recipients]
    assert {case.name for case in reports} == {"dmarc-failure-report", "dkim-failure-report"}
    for case in reports:  # a feedback report: no status, no delivery
        assert all(
            label.status is None and label.delivery is None for label in case.failed.values()
        )
    for case in cases:
        if case.recipients:  # every refusal and deferral of a policy, spam or auth check: 4
            labels = [*case.failed.values(), *case.delayed.values()]
            assert labels and all(label.status == 4 for label in labels)


# The remote replies as the harness's Postfix wrote them in its notices' Diagnostic-Code.
REFUSALS = [
    ("5.7.23", "550 5.7.23 <dag.lund@example.net>: Recipient address rejected: Message "
     "rejected due to: domain owner discourages use of this host. Please see "
     "http://www.openspf.net/Why?s=mfrom;id=news@example.org;ip=192.0.2.46;r=example.net"),
    ("5.7.23", "550 5.7.23 <cecilia.ek@example.net>: Recipient address rejected: Message "
     "rejected due to: SPF fail - not authorized. Please see "
     "http://www.openspf.net/Why?s=mfrom;id=news@example.org;ip=192.0.2.46;r=example.net"),
    ("5.7.1", "554 5.7.1 Service unavailable; Client host [192.0.2.46] blocked using "
     "dnsbl.example; 192.0.2.46 is listed; see http://dnsbl.example/q/192.0.2.46"),
    ("5.7.1", "550 5.7.1 <filip.gren@example.net>: Recipient address rejected: Mail appeared "
     "to be SPAM or forged. Ask your Mail/DNS-Administrator to correct HELO and DNS MX "
     "settings or to get removed from DNSBLs; MTA helo: mx.example.org, MTA hostname: "
     "unknown[192.0.2.46] (helo/hostname mismatch)"),
    ("5.7.0", "550 5.7.0 bad DKIM signature data"),  # OpenDKIM, On-BadSignature reject
    ("5.7.1", "550 5.7.1 rejected by DMARC policy for example.org"),  # OpenDMARC
]  # fmt: skip


@pytest.mark.parametrize(("status", "text"), REFUSALS)
def test_a_policy_or_authentication_refusal_is_4_and_never_a_dead_address(
    status: str, text: str
) -> None:
    found = classify_failure(int(text[:3]), status, text, diagnostic_type="smtp", action="failed")
    assert found.status == 4


GREYLISTED = (
    "450 4.2.0 <agnes.borg@example.net>: Recipient address rejected: Greylisted, see "
    "http://postgrey.schweikert.ch/help/example.net.html"
)


@pytest.mark.parametrize("action", ["delayed", "failed"])
def test_postgreys_greylisting_is_a_policy_deferral_in_the_warning_and_after_the_lifetime(
    action: str,
) -> None:
    found = classify_failure(450, "4.2.0", GREYLISTED, diagnostic_type="smtp", action=action)
    assert found.status == 4


def _report(boundary: str, feedback: str, headers: str) -> bytes:
    return (
        "Return-Path: <postmaster@example.net>\r\n"
        "From: postmaster@example.net\r\n"
        "To: reports@example.org\r\n"
        "Subject: FW: Newsletter 8\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report;\r\n\tboundary="{boundary}"'
        "\r\n\r\n"
        f"--{boundary}\r\nContent-Type: text/plain\r\n\r\n"
        "This is an authentication failure report for an email message received from IP\r\n"
        "192.0.2.46 on Sun,  6 Dec 2026 15:32:02 +0000 (UTC).\r\n\r\n"
        f"--{boundary}\r\nContent-Type: message/feedback-report\r\n\r\n{feedback}\r\n"
        f"--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n{headers}\r\n"
        f"--{boundary}--\r\n"
    ).encode()


ORIGINAL = (
    "From: Newsletter <news@example.org>\r\n"
    "To: hugo.ivars@example.net\r\n"
    "Subject: Newsletter 8\r\n"
    "Message-ID: <179657112141.32398.1@example.org>\r\n"
)
DMARC = (
    "Feedback-Type: auth-failure\r\nVersion: 1\r\nUser-Agent: OpenDMARC-Filter/1.4.2\r\n"
    "Auth-Failure: dmarc\r\n"
    "Authentication-Results: mx.example.net; dmarc=fail header.from=example.org\r\n"
    "Original-Mail-From: news@example.org\r\nSource-IP: 192.0.2.46 ([192.0.2.46])\r\n"
    "Reported-Domain: example.org\r\n"
)
DKIM = (
    "User-Agent: OpenDKIM-Filter/2.11.0\r\nVersion: 0.1\r\n"
    "Original-Mail-From: news@example.org\r\nReporting-MTA: mx.example.net\r\n"
    "Source-IP: 192.0.2.46\r\nReported-Domain: example.org\r\nDelivery-Result: other\r\n"
    "Feedback-Type: auth-failure\r\nAuth-Failure: signature (signature verification failed)\r\n"
    "DKIM-Failure: signature\r\nDKIM-Domain: example.org\r\nDKIM-Selector: news\r\n"
)


@pytest.mark.parametrize("feedback", [DMARC, DKIM], ids=["opendmarc", "opendkim"])
def test_an_authentication_failure_report_is_feedback_not_a_bounce(feedback: str) -> None:
    report, verdicts = classify_mail(_report("mx.example.net:1D7CC224ACE", feedback, ORIGINAL))
    assert report.kind is Kind.FEEDBACK
    assert report.feedback_type == "auth-failure"
    assert verdicts == []
