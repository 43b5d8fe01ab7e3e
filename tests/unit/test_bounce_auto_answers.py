"""Automatic mail that is no failure, and a list's refusal of a post (round 37): the answers
mlmmj 1.3.0, Dovecot 2.3.19.1's Pigeonhole (Sieve ``vacation``), Exim 4.96 (its autoreply
transport and its success notices) and Postfix 3.7.11 (its success notices) wrote here
(``bench/bounce_accuracy/mtas/mlmmj.py``, ``vacation.py``, ``exim_auto.py``, ``receipts.py``),
trimmed. A list's refusal is a bounce (4, or 8 for its size limit; never 2); its notice that
it holds a post for the moderators, its confirmation requests, vacation replies and receipts
are no bounce.
"""

from __future__ import annotations

import pytest

from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail


def _mlmmj(subject: str, words: str, extra_headers: str = "") -> bytes:
    """mlmmj 1.3.0's notice to a poster (its deny-post and wait-post texts), as sent for a post
    of bulletin-ml-01@sender.test to members@linden.test."""
    return (
        "Return-Path: <members+bounces-help@linden.test>\r\n"
        f"Subject: {subject}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/mixed;\r\n"
        ' boundary="=_366a3fd951e195c3530559570f235bad_="\r\n'
        "Content-Transfer-Encoding: 8bit\r\n"
        "From: members+owner@linden.test\r\n"
        "To: bulletin-ml-01@sender.test\r\n"
        f"{extra_headers}"
        "Message-ID: <1796560940-14851-mlmmj-101d5934@linden.test>\r\n"
        "Date: Sun, 06 Dec 2026 12:42:20 +0000\r\n\r\n"
        "--=_366a3fd951e195c3530559570f235bad_=\r\n"
        "Content-Type: text/plain; charset=utf8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n\r\n"
        "Hi, this is the Mlmmj program managing the <members@linden.test> mailing\r\n"
        "list.\r\n\r\n"
        'The message from <bulletin-ml-01@sender.test> with subject "Newsletter 1"\r\n'
        f"{words}\r\n\r\n"
        "--=_366a3fd951e195c3530559570f235bad_=\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        'Content-Disposition: inline; filename="message.eml"\r\n\r\n'
        "X-Original-To: members@linden.test\r\n"
        "Delivered-To: members@linden.test\r\n"
        "From: Newsletter <bulletin-ml-01@sender.test>\r\n"
        "To: members@linden.test\r\n"
        "Subject: Newsletter 1\r\n"
        "Message-ID: <179656094074.14488.2791319528121644823@sender.test>\r\n\r\n"
        "Hello,\r\n\r\n"
        "this is issue 1 of our newsletter.\r\n"
        "--=_366a3fd951e195c3530559570f235bad_=--\r\n"
    ).encode()


DENIED = "=?utf-8?q?Post_to_members=40linden.test_denied:_Newsletter_1?="
HELD = "=?utf-8?q?Awaiting_release_to_members=40linden.test:_Newsletter_1?="
NOT_SUBSCRIBER = (
    "was unable to be delivered to the list because you are not a list\r\nsubscriber.\r\n\r\n"
    "If you believe you are a subscriber, you are probably subscribed with a\r\n"
    "different email address.\r\n\r\n(The denied message is below.)"
)
ACCESS_RULE = (
    "was unable to be delivered to the list because of an access rule set up by\r\n"
    "the list administrator.\r\n\r\n(The denied message is below.)"
)
OVER_SIZE = (
    "was unable to be delivered to the list because it exceeded the maximum allowed\r\n"
    "message size of 3000 bytes.\r\n\r\n(The beginning of the denied message is below.)"
)


@pytest.mark.parametrize(
    ("words", "status"),
    [(NOT_SUBSCRIBER, 4), (ACCESS_RULE, 4), (OVER_SIZE, 8)],
    ids=["not-subscribed", "access-rule", "over-size"],
)
def test_a_lists_refusal_of_a_post_is_a_bounce_of_the_list_address(words: str, status: int) -> None:
    # Before round 37: no bounce (mlmmj's notice has no bounce sender, subject or phrase).
    report, verdicts = classify_mail(_mlmmj(DENIED, words))
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("members@linden.test", status, "failed")
    ]


def test_a_lists_refusal_is_a_bounce_by_its_words_alone_and_never_an_unknown_user() -> None:
    # A refusal under another subject (a list's own, or a translated template) is still read
    # by its text; "different email address" and "not a ... subscriber" are no unknown user.
    report, verdicts = classify_mail(_mlmmj("Your post to members@linden.test", NOT_SUBSCRIBER))
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status) for v in verdicts] == [("members@linden.test", 4)]


def test_a_lists_refusal_with_an_auto_reply_header_is_still_a_bounce() -> None:
    # Counter-example: RFC 3834's header says only that the mail is automatic.
    mail = _mlmmj(DENIED, NOT_SUBSCRIBER, "Auto-Submitted: auto-replied\r\n")
    report, verdicts = classify_mail(mail)
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status) for v in verdicts] == [("members@linden.test", 4)]


@pytest.mark.parametrize(
    "reason", ["because this is a moderated list.", "because you are not a subscriber."]
)
def test_a_post_held_for_the_moderators_is_no_bounce(reason: str) -> None:
    # Counter-example: the list took the post; nothing failed, whatever reason it names.
    words = (
        "has been submitted to the list. However, the moderators are being asked to\r\n"
        f"review it before releasing it to the list {reason}\r\n\r\n(The message is below.)"
    )
    report, verdicts = classify_mail(_mlmmj(HELD, words))
    assert report.kind is not Kind.BOUNCE
    assert verdicts == []


def test_a_held_post_is_no_bounce_even_where_its_words_are_a_refusals() -> None:
    # The subject says the list holds the post: its text cannot make it a failure.
    report, _ = classify_mail(_mlmmj(HELD, NOT_SUBSCRIBER))
    assert report.kind is not Kind.BOUNCE


def test_a_lists_confirmation_request_is_no_bounce() -> None:
    mail = (
        b"Return-Path: <members+bounces-confsub-425c4e320332557f-bulletin-ml-06=sender.test"
        b"@linden.test>\r\n"
        b"Subject: =?utf-8?q?Confirm_subscription_to_members=40linden.test?=\r\n"
        b"From: members+help@linden.test\r\n"
        b"To: bulletin-ml-06@sender.test\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        b"Hi, this is the Mlmmj program managing the <members@linden.test> mailing\r\n"
        b"list.\r\n\r\n"
        b"Somebody (and we hope it was you) has requested that your email address\r\n"
        b"<bulletin-ml-06@sender.test> be added to the list.\r\n"
    )
    report, verdicts = classify_mail(mail)
    assert report.kind is not Kind.BOUNCE
    assert verdicts == []


def _vacation(sender_header: str, subject: str, auto_submitted: str, text: str) -> bytes:
    """A vacation reply as Pigeonhole's Sieve vacation and Exim's autoreply transport sent
    them here."""
    return (
        "Return-Path: <>\r\n"
        f"From: {sender_header}\r\n"
        "To: Newsletter <bulletin-va-05@sender.test>\r\n"
        f"Subject: {subject}\r\n"
        "In-Reply-To: <179656094864.14990.17361313057359662535@sender.test>\r\n"
        f"Auto-Submitted: {auto_submitted}\r\n"
        "Precedence: bulk\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{text}\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("sender", "subject", "auto", "text"),
    [
        ("<emil.sund@spruce.test>", "Re: your message", "auto-replied (vacation)",
         "This mailbox is not monitored and your message will not be read.\r\n"
         "Please write to support@spruce.test instead."),
        ("mona.berg@oakwood.test", "Your mail", "auto-replied",
         "I am on parental leave until March and this mailbox is not read.\r\n"
         "Your message has not been passed on to anyone; please contact office@oakwood.test."),
        ("bruno.sala@spruce.test", "Out of office", "auto-replied (vacation)",
         "Thank you for your message. I am away until Monday 11 January and will answer\r\n"
         "when I am back. Your message has not been forwarded."),
    ],
)  # fmt: skip
def test_a_vacation_reply_is_no_bounce_whatever_the_persons_words(
    sender: str, subject: str, auto: str, text: str
) -> None:
    report, verdicts = classify_mail(_vacation(sender, subject, auto, text))
    assert report.kind is Kind.AUTOREPLY
    assert verdicts == []
    assert [r.recipient for r in report.recipients] == [sender.strip("<>")]


def test_a_real_bounce_of_a_message_with_an_out_of_office_subject_is_still_a_bounce() -> None:
    # Counter-example: the vacation-like words are the returned message's, not the notice's.
    mail = (
        b"Return-Path: <>\r\n"
        b"From: Mail Delivery System <Mailer-Daemon@oakwood.test>\r\n"
        b"To: bulletin-ea-02@sender.test\r\n"
        b"Subject: Mail delivery failed: returning message to sender\r\n"
        b"Auto-Submitted: auto-replied\r\n\r\n"
        b"This message was created automatically by mail delivery software.\r\n\r\n"
        b"A message that you sent could not be delivered to one or more of its\r\n"
        b"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        b"  louis.marin@oakwood.test\r\n"
        b"    Unrouteable address\r\n\r\n"
        b"------ This is a copy of the message, including all the headers. ------\r\n\r\n"
        b"From: Newsletter <bulletin-ea-02@sender.test>\r\n"
        b"To: louis.marin@oakwood.test\r\n"
        b"Subject: Out of office hours: our vacation offers\r\n\r\n"
        b"Hello,\r\n"
    )
    report, verdicts = classify_mail(mail)
    assert report.kind is Kind.BOUNCE
    assert [v.recipient for v in verdicts] == ["louis.marin@oakwood.test"]


def _receipt(action: str, text: str) -> bytes:
    """A success notice as Exim 4.96 sent it for NOTIFY=SUCCESS."""
    return (
        "Return-Path: <>\r\n"
        "From: Mail Delivery System <Mailer-Daemon@oakwood.test>\r\n"
        "Auto-Submitted: auto-generated\r\n"
        "To: bulletin-ea-05@sender.test\r\n"
        "Subject: Delivery Status Notification\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=b1\r\n"
        "MIME-Version: 1.0\r\n\r\n"
        "--b1\r\n"
        "Content-type: text/plain; charset=us-ascii\r\n\r\n"
        "This message was created automatically by mail delivery software.\r\n"
        " ----- The following addresses had successful delivery notifications -----\r\n"
        f"<rolf.eng@birchwood.test> ({text})\r\n\r\n"
        "--b1\r\n"
        "Content-type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.oakwood.test\r\n\r\n"
        f"Action: {action}\r\n"
        "Final-Recipient: rfc822;rolf.eng@birchwood.test\r\n"
        "Status: 2.0.0\r\n\r\n"
        "--b1--\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("action", "text"),
    [("delivered", "relayed to non-DSN-aware mailer"), ("relayed", "relayed"),
     ("expanded", "alias expanded")],
)  # fmt: skip
def test_a_success_notice_is_a_receipt_of_the_address_sent_to(action: str, text: str) -> None:
    report, verdicts = classify_mail(_receipt(action, text))
    assert report.kind is Kind.DELIVERED
    assert verdicts == []
    assert [r.recipient for r in report.recipients] == ["rolf.eng@birchwood.test"]


def _vacation_program(from_header: str, subject: str, text: str, extra: str = "") -> bytes:
    """A reply of Debian's vacation 3.3.3: the user's own ~/.vacation.msg as it is (no RFC
    3834 header of its own), the Date and Message-ID the MTA adds on submission."""
    return (
        "Return-Path: <ulf.sand@elm-home.test>\r\n"
        "Message-ID: <179656194515.26491.1171212028611214239@elm-home.test>\r\n"
        "Date: Sun, 06 Dec 2026 12:59:05 -0000\r\n"
        "To: bulletin-vp-02@sender.test\r\n"
        f"From: {from_header}\r\n"
        f"Subject: {subject}\r\n"
        f"{extra}\r\n"
        f"{text}\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("from_header", "subject", "text", "extra"),
    [
        ("tove.lie@elm-home.test (Tove Lie)", "I am on vacation",
         "I am on vacation until 12 January. If you have something urgent,\r\n"
         "please contact Ulf Sand <ulf.sand@elm-home.test>.\r\n--Tove",
         "Delivered-By-The-Graces-Of: The Vacation program\r\nPrecedence: bulk\r\n"),
        ("Ulf Sand <ulf.sand@elm-home.test>", "Re: Newsletter 2",
         "I am travelling until 12 January with limited access to e-mail and\r\n"
         "will reply when I am back.", ""),
        ("Vera Moen <vera.moen@elm-home.test>", "=?utf-8?q?Frav=C3=A6rsmelding?=",
         "Jeg er på ferie til 12. januar og leser ikke e-post.", ""),
    ],
    ids=["manual-example", "re-subject", "norwegian"],
)  # fmt: skip
def test_a_vacation_programs_reply_without_rfc3834_headers_is_an_auto_reply(
    from_header: str, subject: str, text: str, extra: str
) -> None:
    # Before round 37: "unknown" (no bounce, but its mailbox not found as an auto-reply's).
    report, verdicts = classify_mail(_vacation_program(from_header, subject, text, extra))
    assert report.kind is Kind.AUTOREPLY
    assert verdicts == []
    assert len(report.recipients) == 1
    assert report.recipients[0].recipient.endswith("@elm-home.test")


def test_a_bounce_of_a_message_that_says_its_sender_is_away_is_still_a_bounce() -> None:
    # Counter-example: the absence words are the returned message's; the notice is Postfix's.
    mail = (
        b"Return-Path: <>\r\n"
        b"From: MAILER-DAEMON@mx.hemlock.test (Mail Delivery System)\r\n"
        b"To: bulletin-va-09@sender.test\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n\r\n"
        b"This is the mail system at host mx.hemlock.test.\r\n\r\n"
        b"I'm sorry to have to inform you that your message could not\r\n"
        b"be delivered to one or more recipients.\r\n\r\n"
        b"<nora.vik@spruce.test>: host mx.spruce.test said: 550 5.1.1 User unknown\r\n\r\n"
        b"--- original message ---\r\n"
        b"From: Ulf Sand <bulletin-va-09@sender.test>\r\n"
        b"To: nora.vik@spruce.test\r\n"
        b"Subject: I am on vacation\r\n\r\n"
        b"I am out of the office until 12 January with no access to e-mail.\r\n"
    )
    report, verdicts = classify_mail(mail)
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status) for v in verdicts] == [("nora.vik@spruce.test", 2)]


@pytest.mark.parametrize(
    ("subject", "sender"),
    [("Undeliverable: I am on vacation", "postmaster@spruce.test"),
     ("Re: Newsletter 9", "office@spruce.test")],
)  # fmt: skip
def test_a_notice_in_a_bounces_words_is_a_bounce_whatever_absence_it_names(
    subject: str, sender: str
) -> None:
    # Counter-example: a bounce's subject or phrases decide before a person's absence words.
    mail = (
        "Return-Path: <>\r\n"
        f"From: {sender}\r\n"
        "To: bulletin-va-10@sender.test\r\n"
        f"Subject: {subject}\r\n"
        "Auto-Submitted: auto-replied\r\n\r\n"
        "Your message could not be delivered to nora.vik@spruce.test: the mailbox is\r\n"
        "unavailable. I am away until Monday.\r\n"
        "550 5.1.1 <nora.vik@spruce.test>: Recipient address rejected: User unknown\r\n"
    ).encode()
    report, verdicts = classify_mail(mail)
    assert report.kind is Kind.BOUNCE
    assert [v.recipient for v in verdicts] == ["nora.vik@spruce.test"]
