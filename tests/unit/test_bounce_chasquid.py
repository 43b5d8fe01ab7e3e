"""chasquid's notices (issue #16, round 49), as chasquid 1.11 (Debian 12's package) wrote them
on loopback (``bench/bounce_accuracy/mtas/chasquid.py``; trimmed, domains and dates changed),
and the round's case file. Each test names the behaviour it holds; the first four fail
without round 49's rules (an MDA's exit status under chasquid's "smtp;" diagnostic read 99,
Go's "connect: connection refused" read 4, a blocked connection).
"""

from __future__ import annotations

from importlib import resources

import pytest
import yaml

from bench.bounce_accuracy.mtas.cases import CHASQUID_CASES
from postline.bounce.classify import classify_failure, reply_rules
from postline.bounce.verdicts import classify_mail
from tests.mta_cases_support import assert_committed_set

NOTICE = """\
Return-Path: <>
From: Mail Delivery System <postmaster-dsn@example.org>
To: <news@example.org>
Subject: Mail delivery failed: returning message to sender
Message-ID: <chasquid-dsn-LTMOoeBVEBo@example.org>
Date: Sun, 06 Dec 2026 18:10:45 +0000
X-Failed-Recipients: {recipient},{space}
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
    boundary="Ff1Xxfxfdwo"


--Ff1Xxfxfdwo
Content-Type: text/plain; charset="utf-8"
Content-Disposition: inline
Content-Description: Notification
Content-Transfer-Encoding: 8bit

Delivery of your message to the following recipient(s) failed permanently:

  - {recipient}


Technical details:
- "{recipient}" (EMAIL) {how}
    {error}


--Ff1Xxfxfdwo
Content-Type: message/global-delivery-status
Content-Description: Delivery Report
Content-Transfer-Encoding: 8bit

Reporting-MTA: dns; example.org

Original-Recipient: utf-8; {recipient}
Final-Recipient: utf-8; {recipient}
Action: failed
Status: {status}
Diagnostic-Code: smtp; {error}



--Ff1Xxfxfdwo
Content-Type: message/rfc822
Content-Description: Undelivered Message
Content-Transfer-Encoding: 8bit

From: Newsletter <news@example.org>
To: {recipient}
Subject: Newsletter 25
Message-ID: <1@example.org>

Hello,


--Ff1Xxfxfdwo--
"""
PERMANENT = ("failed permanently with error:", "5.0.0")
TIMED_OUT = ("failed repeatedly and timed out, last error:", "4.0.0")


def _verdict(recipient: str, error: str, kind: tuple[str, str]) -> tuple[int, str]:
    how, status = kind
    text = NOTICE.format(recipient=recipient, error=error, how=how, status=status, space=" ")
    _, found = classify_mail(text.encode())
    assert [v.recipient for v in found] == [recipient]
    return found[0].status, found[0].delivery


def test_an_mda_that_exits_ex_noperm_is_a_refusal_with_or_without_words() -> None:
    # a user's maildrop filter and procmailrc exiting 77: read 99 (on-hold) before round 49
    said = (
        r'MDA delivery failed: exit status 77 - "Sorry, no mail from this sender is accepted '
        r'here.\n"'
    )
    assert _verdict("lisa.moor@example.net", said, PERMANENT) == (4, "failed")
    assert _verdict(
        "karl.ott@example.net", 'MDA delivery failed: exit status 77 - ""', PERMANENT
    ) == (
        4,
        "failed",
    )


def test_an_mda_program_that_is_not_there_is_the_sites_delivery_failing() -> None:
    said = (
        r'MDA delivery failed: exit status 127 - "/etc/chasquid/mda: 16: exec: '
        r'/usr/local/bin/deliver-mail: not found\n"'
    )
    assert _verdict("kai.brandt@example.net", said, PERMANENT) == (7, "failed")


def test_an_mda_that_exited_tempfail_until_chasquid_gave_up_is_a_resend_timeout() -> None:
    # maildrop's maildir on a full disk (75 at every try): read 7 before round 49
    said = (
        r'MDA delivery failed: exit status 75 - "maildrop: error writing to mailbox.\n'
        r'/usr/bin/maildrop: Unable to deliver to mailbox.\n"'
    )
    assert _verdict("ida.west@example.net", said, TIMED_OUT) == (3, "failed")
    assert _verdict(
        "theo.falk@example.net", 'MDA delivery failed: exit status 75 - ""', TIMED_OUT
    ) == (
        3,
        "failed",
    )


def test_a_refused_connection_until_chasquid_gave_up_is_a_resend_timeout() -> None:
    # Go's dial error, after chasquid's own words: read 4 (a blocked connection) before
    said = (
        "all MXs returned transient failures (last: Could not dial: dial tcp "
        "192.0.2.25:25: connect: connection refused)"
    )
    assert _verdict("jana.kuhn@example.net", said, TIMED_OUT) == (3, "failed")


def test_the_programs_own_words_on_the_mailbox_still_come_first() -> None:
    quota = r'MDA delivery failed: exit status 75 - "maildrop: maildir over quota.\n"'
    assert _verdict("greta.lind@example.net", quota, TIMED_OUT) == (5, "failed")
    full = (
        r'MDA delivery failed: exit status 73 - "procmail: No space left to finish writing '
        r'\"/var/mail/felix.horn\"\n"'
    )
    assert _verdict("felix.horn@example.net", full, PERMANENT) == (5, "failed")
    for said in (
        r'MDA delivery failed: exit status 67 - "procmail: Unknown user \"nadia.holm\"\n"',
        r'MDA delivery failed: exit status 67 - "ERR: authdaemon: s_connect() failed: No such '
        r'file or directory\nInvalid user specified.\n"',
    ):
        assert _verdict("nadia.holm@example.net", said, PERMANENT) == (2, "failed")


def test_chasquids_remote_replies_read_as_their_cause() -> None:
    said = "MAIL+RCPT 550 5.1.1 <alma.brandt@example.net>: Recipient address rejected: User unknown"
    assert _verdict("alma.brandt@example.net", said, PERMANENT) == (2, "failed")
    said = "DATA closing 552 5.3.4 Message size exceeds fixed maximum message size"
    assert _verdict("gerd.ott@example.net", said, PERMANENT) == (8, "failed")


@pytest.mark.parametrize(
    ("text", "dtype", "action", "status"),
    [
        # a delay warning of a program's EX_TEMPFAIL stays the program's failure (7)
        ("75 maildrop: error writing to mailbox.", "x-unix", "delayed", 7),
        # the words only count at the start of the diagnostic, not quoted in a remote reply
        ('550 5.7.1 filter said: MDA delivery failed: exit status 77 - "no"', "smtp", "failed", 4),
        # a server's refusal of our connection stays a block
        ("554 5.7.1 Connection refused by policy: your IP is listed", "smtp", "failed", 4),
    ],
)
def test_counter_examples_keep_their_reading(
    text: str, dtype: str, action: str, status: int
) -> None:
    code = int(text[:3]) if text[:3].isdigit() and dtype == "smtp" else 0
    enhanced = text.split()[1] if code else ("4.0.0" if action == "delayed" else "5.0.0")
    found = classify_failure(code, enhanced, text, diagnostic_type=dtype, action=action)
    assert found.status == status


def reply_rules_sample() -> str:
    """The rules file's own sample of ``local_program``."""
    raw = yaml.safe_load(
        resources.files("postline.bounce.rules").joinpath("smtp_replies.yaml").read_text("utf-8")
    )
    return str(raw["local_program"]["sample"])


def test_the_local_program_words_match_their_sample_and_mean_a_local_programs_type() -> None:
    rules = reply_rules()
    assert rules.local_program is not None
    assert rules.local_program_type in rules.diagnostic_types
    sample = reply_rules_sample()
    found = rules.local_program.match(sample)
    assert found is not None and found.group(1) == "77"
    assert "75" in rules.gave_up_exits


def test_the_chasquid_cases_are_a_committed_set_of_the_recorded_package() -> None:
    assert_committed_set(
        CHASQUID_CASES,
        ("chasquid",),
        cases=(27,),
        rows=(29,),
        delayed=(0,),  # chasquid sends no delay warning
        senders=27,
        split="dev",
        statuses={1, 2, 3, 4, 5, 7, 8},
    )
    assert "1.11-2+b2" in CHASQUID_CASES.read_text("utf-8")  # the package's version recorded
