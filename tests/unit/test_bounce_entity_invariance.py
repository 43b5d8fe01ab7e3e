"""The bounce classifier's answer under renamed names (issue #16, round 74;
``bench/bounce_accuracy/entities.py``): each renaming's own behaviour (a name replaced
everywhere it is plain, the mail skipped where it is left encoded, the names that are
evidence kept), a bounded run over a fixed sample of the shared corpus (skipped where the
corpus is not beside the clone), and the classifier's fix the measurement led to (names
masked before a reason's words are read: ``postline.bounce.names``), which fails without it.
"""

from __future__ import annotations

import base64

import pytest

from bench.bounce_accuracy.entities import (
    RENAMINGS,
    REWRITES,
    hosts_of,
    ids_of,
    reply_renamed,
)
from bench.bounce_accuracy.invariance import answer, renamed
from postline.bounce.classify import classify_reply, reply_rules
from tests.conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpus" / "bounces" / "sisimai"
RECIPIENT = "nadia.holm@alder.example"

NOTICE = b"""\
Return-Path: <>
Received: from mx.example.org (mx.example.org [198.51.100.4])
	by relay.example.org (Postfix) with ESMTP id 4QxT2K1ZqPz9tY for <news@example.org>
From: Mail Delivery System <MAILER-DAEMON@mx.example.org>
To: news@example.org
Subject: Undelivered Mail Returned to Sender
Message-ID: <20261207061500.4QxT2K1ZqPz9tY@mx.example.org>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

This is the mail system at host mx.example.org.

<nadia.holm@alder.example>: host mx.alder.example[192.0.2.7] said: 552 5.2.2
    <nadia.holm@alder.example>: Mailbox full (in reply to RCPT TO command)

--b1
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org
X-Postfix-Queue-ID: 4QxT2K1ZqPz9tY

Final-Recipient: rfc822; nadia.holm@alder.example
Action: failed
Status: 5.2.2
Remote-MTA: dns; mx.alder.example
Diagnostic-Code: smtp; 552 5.2.2 <nadia.holm@alder.example>: Mailbox full

--b1
Content-Type: message/rfc822

From: News <news@example.org>
To: nadia.holm@alder.example
Subject: December's letter
Message-ID: <letter-42@example.org>

Hello.

--b1--
"""


def _rewritten(name: str, raw: bytes = NOTICE) -> tuple[bytes, object]:
    done = REWRITES[name](raw, [RECIPIENT])
    assert done is not None, name
    return done


def test_the_notice_is_read_as_labelled() -> None:
    assert answer(NOTICE) == ("bounce", ((RECIPIENT, 5, "failed"),))


@pytest.mark.parametrize("name", sorted(REWRITES))
def test_the_notice_answer_holds_under_each_renaming(name: str) -> None:
    done = REWRITES[name](NOTICE, [RECIPIENT])
    assert done is not None, name  # every kind of name is in the notice
    changed, rename = done
    assert answer(changed) == renamed(answer(NOTICE), rename)


def test_a_local_part_is_renamed_everywhere_and_the_answer_with_it() -> None:
    changed, rename = _rewritten("local_quota")
    assert RECIPIENT.encode() not in changed
    assert changed.count(b"quota@alder.example") == NOTICE.count(RECIPIENT.encode())
    assert rename(RECIPIENT) == "quota@alder.example"
    assert answer(changed) == ("bounce", (("quota@alder.example", 5, "failed"),))


def test_a_name_left_encoded_skips_the_mail() -> None:
    text = b"<nadia.holm@alder.example>: host mx.alder.example[192.0.2.7] said: 552 5.2.2\n"
    encoded = NOTICE.replace(
        b"Content-Type: text/plain; charset=us-ascii\n\nThis is the mail system",
        b"Content-Type: text/plain; charset=us-ascii\nContent-Transfer-Encoding: base64\n\n"
        + base64.encodebytes(text)
        + b"\nThis is the mail system",
    )
    assert REWRITES["local_quota"](encoded, [RECIPIENT]) is None
    assert REWRITES["local_quota"](NOTICE, ["nobody@nowhere.example"]) is None


def test_hosts_are_the_mtas_and_keep_the_recipients_domain() -> None:
    text = NOTICE.decode().lower()
    assert hosts_of(text) == ["mx.example.org", "mx.alder.example", "relay.example.org"]
    changed, _ = _rewritten("host_spam")
    assert b"host spam.mx.alder.example[192.0.2.7]" in changed
    assert b"Reporting-MTA: dns; spam.mx.example.org" in changed
    assert b"<nadia.holm@alder.example>" in changed  # not a host: an address's domain
    neutral, _ = _rewritten("host_neutral")
    assert b"mx.alder.example" not in neutral and b"alder.example" in neutral


def test_a_kept_domain_keeps_its_name() -> None:
    raw = NOTICE.replace(b"mx.alder.example", b"alt1.gmail-smtp-in.l.google.com")
    neutral, _ = _rewritten("host_neutral", raw)
    assert b".google.com[192.0.2.7]" in neutral and b"gmail-smtp-in" not in neutral


def test_ipv4_renumbered_but_loopback() -> None:
    raw = NOTICE.replace(b"said: 552", b"said (127.0.0.2): 552")
    changed, _ = _rewritten("ipv4_renumbered", raw)
    assert b"192.0.2.7" not in changed and b"198.51.100.4" not in changed
    assert b"127.0.0.2" in changed


def test_ids_are_message_ids_and_queue_ids() -> None:
    assert ids_of(NOTICE.decode()) == [
        "20261207061500.4qxt2k1zqpz9ty",
        "letter-42",
        "4qxt2k1zqpz9ty",
    ]
    changed, _ = _rewritten("ids_trap")
    assert b"4QxT2K1ZqPz9tY" not in changed and b"letter-42" not in changed
    assert b"<quota.spam.blocked." in changed


def test_a_reply_is_renamed_as_a_mail() -> None:
    line = "550 5.1.1 <jo@example.org>: host mx.example.org[192.0.2.1] said: user unknown"
    assert reply_renamed(line, "local_spam") == line.replace("jo@", "spam@")
    assert reply_renamed(line, "host_quota") == line.replace("mx.ex", "quota.mx.ex")
    assert reply_renamed("550 5.1.1 User unknown", "host_quota") is None


# --- the fix: names masked before the words are read ----------------------------------------

# Each read otherwise by main's classifier before round 74: the name's word was the cause.
NAMED = [
    ("550 5.7.1 <nosuchuser@example.org> sender is blocklisted", 4),
    ("550 5.7.1 host unknown.mx.example.org [192.0.2.25] black listed", 4),
    ("550 5.7.1 host nosuchuser.mx.example.org [192.0.2.25] black listed", 4),
    ("550 <denied@example.com> recipient rejected", 99),
]


@pytest.mark.parametrize(("reply", "status"), NAMED)
def test_a_name_is_no_word_of_the_cause(reply: str, status: int) -> None:
    verdict = classify_reply(int(reply[:3]), reply.split()[1], reply)
    assert verdict.status == status, verdict.reason


KEPT = [
    ("554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked using zen.spamhaus.org", 4),
    ("550 5.7.1 Rejected: listed at bl.spamcop.net", 4),
    ("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found", 2),
    ("550 5.0.0 mail.local: unknown user: jo", 2),
    ("550 5.1.1 <jo@example.org>: Recipient address rejected: User unknown", 2),
]


@pytest.mark.parametrize(("reply", "status"), KEPT)
def test_names_that_are_evidence_or_no_names_are_read(reply: str, status: int) -> None:
    assert classify_reply(int(reply[:3]), reply.split()[1], reply).status == status


def test_words_after_a_host_or_an_address_still_count() -> None:
    for reply in (
        "host spamfilter.hoster.de[192.0.2.7] said: 550 5.1.1 <jo@example.org>: User unknown",
        "host antivirus.isp[10.0.0.7] said: 550 5.1.1 <quota@example.org>: User unknown",
    ):
        assert classify_reply(550, "5.1.1", reply).status == 2


def test_a_masked_name_keeps_its_length_and_punctuation() -> None:
    mask = reply_rules().names
    assert mask is not None
    text = "host spam-quota.mx.example.org[192.0.2.7] said: <quota@example.org> is full"
    masked = mask.mask(text)
    assert len(masked) == len(text)
    assert "spam" not in masked and "quota" not in masked and "is full" in masked
    assert "[192.0.2.7]" in masked and "@" in masked
    assert mask.mask("user unknown.please check") == "user unknown.please check"


# --- a bounded run over the shared corpus ---------------------------------------------------

# Mails whose answer main's classifier changed under a renaming (round 74's measurement).
CHANGED_ON_MAIN = (
    "lhost-amazonses-19.eml",
    "lhost-courier-02.eml",
    "lhost-dragonfly-13.eml",
    "lhost-exim-52.eml",
    "rhost-spectrum-01.eml",
)


def _sample() -> list[str]:
    names = sorted(p.name for p in (CORPUS / "eml").glob("*.eml"))
    return sorted(set(names[::25]) | set(CHANGED_ON_MAIN))


def _recipients() -> dict[str, list[str]]:
    import json

    found: dict[str, list[str]] = {}
    for line in (CORPUS / "labels.jsonl").read_text("utf-8").splitlines():
        row = json.loads(line)
        if row.get("recipient"):
            found.setdefault(row["file"].removeprefix("eml/"), []).append(row["recipient"])
    return found


@pytest.mark.skipif(
    not (CORPUS / "labels.jsonl").exists(), reason=f"bounce corpus not found at {CORPUS}"
)
@pytest.mark.parametrize("name", sorted(REWRITES))
def test_corpus_sample_answers_hold(name: str) -> None:
    rewrite = REWRITES[name]
    recipients = _recipients()
    changed = []
    for file in _sample():
        raw = (CORPUS / "eml" / file).read_bytes()
        done = rewrite(raw, recipients.get(file, []))
        if done is not None and answer(done[0]) != renamed(answer(raw), done[1]):
            changed.append(file)
    assert changed == []


def test_every_renaming_is_measured() -> None:
    assert set(REWRITES) == set(RENAMINGS)
