"""Bounce mails: which recipients a notice reports, and what it says of each.

The mails are written here in the forms MTAs use (RFC 3464 reports, Postfix, Exim, Sendmail
and webmail text notices, HTML-only notices); each test names the behaviour it holds.
"""

from __future__ import annotations

from postline.bounce.mail import Kind, parse_bounce
from postline.bounce.mail.mime import html_to_text
from postline.bounce.verdicts import classify_mail


def _dsn(fields: str, *, returned_to: str = "", notice: str = "The mail system\r\n") -> bytes:
    returned = (
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: app@example.test\r\nTo: {returned_to}\r\nSubject: Hello\r\n"
        "Message-ID: <m1@example.test>\r\n\r\n"
        if returned_to
        else ""
    )
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: bounces@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        f"--b\r\nContent-Type: text/plain\r\n\r\n{notice}\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"{fields}\r\n{returned}--b--\r\n"
    ).encode()


def _text(subject: str, body: str, sender: str = "MAILER-DAEMON@mx.example.org") -> bytes:
    return (
        f"From: {sender}\r\nTo: bounces@example.test\r\nSubject: {subject}\r\n"
        f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


def test_the_recipient_is_the_original_recipient_not_the_forwarding_target() -> None:
    mail = _dsn(
        "Original-Recipient: rfc822;sales@example.org\r\n"
        "Final-Recipient: rfc822;jane@forwarded.example.net\r\n"
        "Action: failed\r\nStatus: 5.2.2\r\n"
        "Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n"
    )
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("sales@example.org", 5, "jane@forwarded.example.net")
    ]
    assert verdicts[0].as_json()["final_recipient"] == "jane@forwarded.example.net"


def test_the_returned_message_says_which_address_was_sent_to() -> None:
    # An MTA that wrote its own alias into Original-Recipient: the returned message's To
    # names the Final-Recipient, which is then the address the sender used.
    mail = _dsn(
        "Original-Recipient: rfc822;internal-alias@mx.example.org\r\n"
        "Final-Recipient: rfc822;bob@example.org\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\n",
        returned_to="Bob <bob@example.org>",
    )
    _, verdicts = classify_mail(mail)
    assert [v.recipient for v in verdicts] == ["bob@example.org"]


_SENDMAIL_TEXT = (
    "   ----- The following addresses had permanent fatal errors -----\r\n"
    "<ops@example.org>\r\n\r\n"
    "   ----- Transcript of session follows -----\r\n"
    "<ops@example.org>... Deferred\r\n"
    "Message could not be delivered for 5 days\r\n"
)


def test_the_text_and_returned_message_name_the_address_sent_to_over_a_lone_final_recipient() -> (
    None
):
    # No Original-Recipient (RFC 3464 2.3.1): the report names only the rewritten address,
    # while the notice's text lists, and the returned message was sent To, another one.
    mail = _dsn(
        "Final-Recipient: RFC822; ops@mailhost.example.net\r\nAction: failed\r\nStatus: 4.4.7\r\n",
        returned_to="ops@example.org",
        notice=_SENDMAIL_TEXT,
    )
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("ops@example.org", 3, "ops@mailhost.example.net")
    ]


def test_a_lone_final_recipient_stays_when_the_returned_message_names_it_or_none() -> None:
    fields = (
        "Final-Recipient: RFC822; ops@mailhost.example.net\r\nAction: failed\r\nStatus: 4.4.7\r\n"
    )
    for returned_to in (
        "ops@mailhost.example.net",
        "ops@example.org, ops@mailhost.example.net",
        "",
    ):
        mail = _dsn(fields, returned_to=returned_to, notice=_SENDMAIL_TEXT)
        _, verdicts = classify_mail(mail)
        assert [v.recipient for v in verdicts] == ["ops@mailhost.example.net"], returned_to
    # Two addresses in the text: which one the report means is not said.
    two = _SENDMAIL_TEXT.replace(
        "<ops@example.org>\r\n\r\n", "<ops@example.org>\r\n<it@example.org>\r\n\r\n"
    )
    _, verdicts = classify_mail(_dsn(fields, returned_to="ops@example.org", notice=two))
    assert [v.recipient for v in verdicts] == ["ops@mailhost.example.net"]
    # An Original-Recipient says it itself (sent_to decides, as before).
    with_original = "Original-Recipient: rfc822;ops@mailhost.example.net\r\n" + fields
    _, verdicts = classify_mail(
        _dsn(with_original, returned_to="ops@example.org", notice=_SENDMAIL_TEXT)
    )
    assert [v.recipient for v in verdicts] == ["ops@mailhost.example.net"]


def test_an_original_recipient_that_only_differs_by_quoting_is_the_same_address() -> None:
    mail = _dsn(
        "Original-Recipient: rfc822;odd..name@example.org\r\n"
        'Final-Recipient: rfc822;"odd..name"@example.org\r\n'
        "Action: failed\r\nStatus: 5.1.1\r\n"
    )
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.final_recipient) for v in verdicts] == [('"odd..name"@example.org', "")]


def test_postfix_expanded_from_reports_the_alias_the_mail_was_sent_to() -> None:
    body = (
        "This is the mail system at host mx.example.org.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        "<jane@example.org> (expanded from <team@example.org>): maildir delivery failed:\r\n"
        "    Sorry, the user's maildir has overdrawn his diskspace quota\r\n"
    )
    _, verdicts = classify_mail(_text("Undelivered Mail Returned to Sender", body))
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("team@example.org", 5, "jane@example.org")
    ]


def test_exim_generated_from_reports_the_address_the_mail_was_sent_to() -> None:
    body = (
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  jane@elsewhere.example.net\r\n"
        "    (generated from info@example.org)\r\n"
        "    SMTP error from remote mail server after RCPT TO:<jane@elsewhere.example.net>:\r\n"
        "    550 5.1.1 User unknown\r\n"
    )
    _, verdicts = classify_mail(_text("Mail delivery failed: returning message to sender", body))
    assert [(v.recipient, v.status) for v in verdicts] == [("info@example.org", 2)]


def test_a_notice_lists_only_the_recipients_that_failed() -> None:
    body = (
        "Your message\r\n\r\n  Subject: Hello\r\n\r\n"
        "was delivered to the following recipients:\r\n\r\n"
        "  ok-one@example.org\r\n  ok-two@example.org\r\n\r\n"
        "was not delivered to:\r\n\r\n  gone@example.org\r\n\r\n"
        "because:\r\n\r\n  User gone (gone@example.org) not listed in Domino Directory\r\n"
    )
    _, verdicts = classify_mail(_text("DELIVERY FAILURE: User gone not listed", body))
    assert [(v.recipient, v.status) for v in verdicts] == [("gone@example.org", 2)]


def test_sendmail_permanent_and_transient_sections_set_each_recipients_delivery() -> None:
    body = (
        "The original message was received at Mon, 1 Dec 2025 10:00:00 +0100\r\n\r\n"
        "   ----- The following addresses had permanent fatal errors -----\r\n"
        "<nobody@example.org>\r\n"
        "    (reason: 550 5.1.1 <nobody@example.org>... User unknown)\r\n\r\n"
        "   ----- The following addresses had transient non-fatal errors -----\r\n"
        "<busy@example.net>\r\n"
        "    (reason: 452 4.2.2 Mailbox full)\r\n\r\n"
        "   ----- Transcript of session follows -----\r\n"
    )
    _, verdicts = classify_mail(_text("Returned mail: see transcript for details", body))
    found = {v.recipient: (v.status, v.delivery) for v in verdicts}
    assert found == {"nobody@example.org": (2, "failed"), "busy@example.net": (5, "deferred")}


def test_a_text_notice_listing_only_delivered_recipients_is_a_receipt() -> None:
    body = (
        "This is the mail system at host mx.example.org.\r\n\r\n"
        "Your message was successfully delivered to the destination(s)\r\n"
        "listed below.\r\n\r\n"
        "<reader@example.org>: delivery via mx.example.org[192.0.2.1]:25: 250 2.0.0 Ok\r\n"
    )
    report = parse_bounce(_text("Successful Mail Delivery Report", body))
    assert report.kind is Kind.DELIVERED


def test_the_sender_named_in_a_notice_is_no_recipient() -> None:
    body = (
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message sent by\r\n\r\n  <someone@example.test>\r\n\r\n"
        "could not be delivered to one or more of its recipients. The following\r\n"
        "address(es) failed:\r\n\r\n  lost@example.net\r\n    Unrouteable address\r\n"
    )
    _, verdicts = classify_mail(_text("Mail delivery failed", body))
    # (a domain other than the notice's host's: of its own, the words are an unknown user)
    assert [(v.recipient, v.status) for v in verdicts] == [("lost@example.net", 1)]


def test_a_scanners_footer_is_not_the_diagnostic() -> None:
    body = (
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent has not yet been delivered to one or more of its\r\n"
        "recipients after more than 48 hours on the queue on mx.example.org.\r\n\r\n"
        "The address to which the message has not yet been delivered is:\r\n\r\n"
        "  slow@example.org\r\n\r\n"
        "No action is required on your part.\r\n"
        "__________ Information from ESET NOD32 Antivirus __________\r\n"
        "This message was checked by the antivirus system: no virus found\r\n"
    )
    _, verdicts = classify_mail(_text("Warning: message delayed 48 hours", body))
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("slow@example.org", 3, "deferred")
    ]


def test_a_scanners_footer_is_not_the_reason_stated_once_for_all() -> None:
    # A notice that names its recipient with no reply: the words about every recipient are
    # read as the reason, but not the scanner's footer (NOD32's, in Spanish).
    body = (
        "This is an automatically generated Delivery Status Notification.\r\n\r\n"
        "Delivery to the following recipients failed.\r\n\r\n"
        "       gone@example.org\r\n\r\n"
        "__________ Informacion de NOD32, revision 1.1856 (20061106) __________\r\n\r\n"
        "Este mensaje ha sido analizado con  NOD32 antivirus system\r\n"
        "http://www.nod32.com\r\n"
    )
    _, verdicts = classify_mail(_text("Delivery Status Notification (Failure)", body))
    assert [(v.recipient, v.rule) for v in verdicts] == [("gone@example.org", "on-hold")]


def test_an_address_followed_by_itself_in_brackets_is_a_recipient_line() -> None:
    # Active!Hunter's Sendmail-like notice, read without the returned message.
    body = (
        "The original message was received at Thu, 29 Apr 2011 23:34:45 +0900\r\n"
        "from example.co.jp\r\n\r\n"
        "  ----- The following addresses had permanent fatal errors -----\r\n\r\n"
        ">>> gone@example.org <gone@example.org>\r\n\r\n"
        "  ----- Transcript of session follows -----\r\n"
        "550 sorry, no mailbox here by that name (#5.1.1 - chkusr)\r\n"
    )
    _, verdicts = classify_mail(_text("FAILURE NOTICE : Hello", body))
    assert [(v.recipient, v.status) for v in verdicts] == [("gone@example.org", 2)]


def test_auto_submitted_does_not_make_a_bounce_from_an_ordinary_sender_an_auto_reply() -> None:
    # RFC 3834's header is set by bounce generators too; the notice's words decide, unless
    # the subject is an auto-reply's.
    body = (
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  gone@example.org\r\n"
        "    SMTP error from remote mail server after RCPT TO:<gone@example.org>:\r\n"
        "    550 5.1.1 No such user\r\n"
    )
    head = "Auto-Submitted: auto-replied\r\n"
    sender = "notifications@mail.example.net"
    mail = head.encode() + _text("Notification", body, sender=sender)
    report, verdicts = classify_mail(mail)
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status) for v in verdicts] == [("gone@example.org", 2)]
    away = head.encode() + _text("Out of office: Hello", "I am away until Monday.\r\n", sender)
    assert classify_mail(away)[0].kind is Kind.AUTOREPLY
    plain = head.encode() + _text("Re: Hello", "Thank you, we will answer soon.\r\n", sender)
    assert classify_mail(plain)[0].kind is Kind.AUTOREPLY


def test_an_auto_reply_sent_on_as_mailer_daemon_is_no_bounce() -> None:
    # RFC 3834: a responder answers the Return-Path (a bulk sender's bounce address) and
    # marks its reply; a sending service may pass it on as MAILER-DAEMON (Amazon SES).
    ses = "MAILER-DAEMON@amazonses.com"
    marks = "X-Autoreply: yes\r\nAuto-Submitted: auto-replied\r\n"
    body = "Please send questions to jo@example.org.\r\n"
    away = _text("Out of Office Re: Weekly report", body, ses)
    report, verdicts = classify_mail(marks.encode() + away)
    assert report.kind is Kind.AUTOREPLY and verdicts == []
    # Without an RFC 3834 header, or without an auto-reply subject, the sender decides: a
    # bounce's, so no auto-reply (a bounce, if the text names a recipient).
    assert classify_mail(away)[0].kind is not Kind.AUTOREPLY
    plain = _text("Re: Weekly report", body, ses)
    assert classify_mail(marks.encode() + plain)[0].kind is not Kind.AUTOREPLY
    # Exim marks its notices Auto-Submitted: auto-replied: a bounce's words decide.
    failed = (
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  gone@example.org\r\n    550 5.1.1 No such user\r\n"
    )
    notice = marks.encode() + _text("Out of office: Hello", failed)
    report, verdicts = classify_mail(notice)
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status) for v in verdicts] == [("gone@example.org", 2)]
    # And a report's fields are read before any auto-reply sign.
    fields = "Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    dsn = _dsn(fields).replace(b"Subject: Undelivered Mail Returned to Sender", b"Subject: Away")
    report, verdicts = classify_mail(marks.encode() + dsn)
    assert report.kind is Kind.BOUNCE
    assert [(v.recipient, v.status) for v in verdicts] == [("gone@example.org", 2)]


def test_opensmtpds_notice_is_a_bounce_by_its_sender_name_or_its_words() -> None:
    body = (
        "    Hi!\r\n\r\n    This is the MAILER-DAEMON, please DO NOT REPLY to this e-mail.\r\n\r\n"
        "    An error has occurred while attempting to deliver a message for\r\n"
        "    the following list of recipients:\r\n\r\n"
        "gone@example.org: Envelope expired\r\n"
    )
    for sender in ("Mailer Daemon <mta@example.net>", "mta@example.net"):
        _, verdicts = classify_mail(_text("Notification", body, sender=sender))
        assert [(v.recipient, v.status) for v in verdicts] == [("gone@example.org", 3)], sender


def test_an_html_only_notice_is_read_with_every_html_entity() -> None:
    html = (
        "<html><head><style>p {color: red}</style><title>Undeliverable</title></head><body>"
        "<p>Delivery has failed to these recipients:</p>"
        "<p><b>user&#64;example.org</b></p>"
        "<p>Mailbox full &ndash; the recipient&rsquo;s storage quota was exceeded.</p>"
        "<script>var x = '550 5.1.1 user unknown';</script></body></html>"
    )
    mail = (
        "From: postmaster@example.org\r\nTo: bounces@example.test\r\n"
        "Subject: Undeliverable: Hello\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" + html
    ).encode()
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status) for v in verdicts] == [("user@example.org", 5)]


def test_html_to_text_decodes_entities_and_drops_style_and_script() -> None:
    text = html_to_text(
        "<style>.a{}</style><p>caf&eacute; &lt;a@b.test&gt; &#x2013; &nbsp;ok</p>"
        "<script>alert(1)</script><br>end"
    )
    assert " ".join(text.split()) == "café <a@b.test> – ok end"
    assert "alert" not in text and ".a{}" not in text


def test_a_report_without_diagnostic_reads_the_remote_reply_from_the_notice() -> None:
    # CommuniGate Pro: the report fields carry no Diagnostic-Code; the notice quotes the
    # remote server's reply on the lines after "Failed to deliver to '<address>'".
    notice = (
        "Failed to deliver to '<carol@example.org>'\r\n"
        "SMTP module(domain mx.example.org) reports:\r\n"
        " host mx.example.org says:\r\n"
        "  550 carol@example.org unknown user account\r\n"
    )
    mail = _dsn(
        "Original-Recipient: rfc822;<carol@example.org>\r\n"
        "Final-Recipient: rfc822;<carol@example.org>\r\n"
        "Action: failed\r\nStatus: 5.0.0\r\n",
        notice=notice,
    )
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status, v.reply_code) for v in verdicts] == [
        ("carol@example.org", 2, 550)
    ]


def test_the_returned_messages_envelope_names_the_address_sent_to() -> None:
    # No Original-Recipient: the first hop's Received header recorded the address the mail
    # was sent to, a later hop the address it was forwarded to, which failed.
    returned = (
        "--b\r\nContent-Type: message/rfc822\r\n\r\n"
        "Received: from mx.example.org by mail.example.net\r\n"
        "\tfor <dana@example.net>; Mon, 1 Dec 2025 10:00:02 +0100\r\n"
        "Received: from out.example.test by mx.example.org\r\n"
        "\tfor <dana@example.org>; Mon, 1 Dec 2025 10:00:01 +0100\r\n"
        "From: app@example.test\r\nTo: dana@example.org\r\nSubject: Hello\r\n\r\nHi\r\n"
    )
    mail = _dsn(
        "Final-Recipient: rfc822;dana@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <dana@example.net>... User unknown\r\n"
    ).replace(b"--b--\r\n", returned.encode() + b"--b--\r\n")
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.final_recipient, v.status) for v in verdicts] == [
        ("dana@example.org", "dana@example.net", 2)
    ]


def test_a_message_resent_by_hand_keeps_its_failed_recipient() -> None:
    # Three envelope recipients on the way: the message had an earlier life (resent or
    # forwarded by hand), so the first hop says nothing about this delivery.
    returned = (
        "--b\r\nContent-Type: message/rfc822\r\n\r\n"
        "Received: from a by b\r\n\tfor <erin@example.net>; Mon, 1 Dec 2025 10:00:03 +0100\r\n"
        "Received: from c by d\r\n\tfor <frank@example.org>; Mon, 1 Dec 2025 09:00:02 +0100\r\n"
        "Received: from e by f\r\n\tfor <gina@example.com>; Mon, 1 Dec 2025 09:00:01 +0100\r\n"
        "From: app@example.test\r\nTo: erin@example.net\r\nSubject: Hello\r\n\r\nHi\r\n"
    )
    mail = _dsn(
        "Final-Recipient: rfc822;erin@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
    ).replace(b"--b--\r\n", returned.encode() + b"--b--\r\n")
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.final_recipient) for v in verdicts] == [("erin@example.net", "")]


def test_a_notice_naming_the_recipient_in_its_first_sentence() -> None:
    # Office 365 and Gmail write no address line: "Your message to <x> couldn't be
    # delivered" / "has been blocked", then their reasons in their own words.
    office = _text(
        "Undeliverable: Hello",
        "Your message to u@example.org couldn't be delivered.\r\n"
        "u wasn't found at example.org.\r\n\r\nAction Required\r\nUnknown To address\r\n",
        sender="Microsoft Outlook <MicrosoftExchange329e71@example.test>",
    )
    gmail = _text(
        "Delivery Status Notification (Failure)",
        "** Message blocked **\r\n\r\nYour message to u@example.org has been blocked. See "
        "technical details below for more information.\r\n\r\nThe response was:\r\n\r\n"
        "The message was blocked by the receiving organization's security or policy settings.\r\n",
    )
    for mail, status in ((office, 2), (gmail, 4)):
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == [("u@example.org", status)]


def test_qmails_closing_line_does_not_make_a_refusal_an_expiry() -> None:
    mail = _text(
        "failure notice",
        "Hi. This is the qmail-send program at mx.example.org.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        "<u@example.org>:\r\n192.0.2.1 does not like recipient.\r\n"
        "Remote host said: 554 5.7.1 Message rejected because of unacceptable content\r\n"
        "Giving up on 192.0.2.1.\r\n",
    )
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("u@example.org", 4, "failed")
    ]


def test_exims_own_unknown_user_is_an_unknown_user() -> None:
    # Exim's notice when its router accepts no local part: the address, then "Unknown user"
    # with no SMTP error, and Status 5.0.0 in the report.
    notice = (
        "This message was created automatically by mail delivery software.\r\n\r\n"
        "A message that you sent could not be delivered to one or more of its\r\n"
        "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
        "  u@example.org\r\n    Unknown user\r\n"
    )
    mail = _dsn(
        "Action: failed\r\nFinal-Recipient: rfc822;u@example.org\r\nStatus: 5.0.0\r\n",
        notice=notice,
    )
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("u@example.org", 2, "failed")
    ]


def test_exims_unrouteable_address_in_its_own_domain_is_an_unknown_user() -> None:
    # Exim says "Unrouteable address" when no router takes an address (round 21's Exim): of
    # a domain its host belongs to (the notice is from MAILER-DAEMON@mx.example.org) no
    # mailbox has that local part (2); of another domain no route was found (1).
    def notice(address: str) -> bytes:
        text = (
            "This message was created automatically by mail delivery software.\r\n\r\n"
            "A message that you sent could not be delivered to one or more of its\r\n"
            "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
            f"  {address}\r\n    Unrouteable address\r\n"
        )
        fields = f"Action: failed\r\nFinal-Recipient: rfc822;{address}\r\nStatus: 5.0.0\r\n"
        return _dsn(fields, notice=text)

    for address, status in (
        ("u@example.org", 2),
        ("u@mx.example.org", 2),
        ("u@example.net", 1),
        ("u@notexample.org", 1),
    ):
        _, verdicts = classify_mail(notice(address))
        assert [(v.recipient, v.status) for v in verdicts] == [(address, status)], address


def test_a_text_notice_gives_each_recipient_its_own_reason() -> None:
    # Partial failures of older MTAs: each listed address with its own words, in English
    # (CompuServe's "Receiver not found", GroupWise's parenthesised reasons) and German
    # written without umlauts.
    compuserve = _text(
        "Undeliverable Message",
        "Receiver not found: eve@example.com\r\n\r\n"
        "Your message could not be delivered as addressed.\r\n",
    )
    groupwise = _text(
        "Undeliverable mail",
        "The message that you sent was undeliverable to the following:\r\n"
        "\tgus@example.org (user not found)\r\n\thal@example.org (mailbox full)\r\n",
    )
    german = _text(
        "Unzustellbar",
        "Ihre Nachricht konnte nicht zugestellt werden an:\r\n\r\n"
        "pat@example.de\r\n    Empfaenger unbekannt\r\n\r\n"
        "quinn@example.de\r\n    Postfach ist voll\r\n",
    )
    expected = {
        compuserve: [("eve@example.com", 2)],
        groupwise: [("gus@example.org", 2), ("hal@example.org", 5)],
        german: [("pat@example.de", 2), ("quinn@example.de", 5)],
    }
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_notices_that_name_failed_recipients_in_other_forms() -> None:
    # A "Not delivered to:" heading after a "Delivered to:" one (only the failed address is
    # reported), a sentence naming the address (Mercury/32), and "Recipient:" in Chinese.
    mixed = _text(
        "Undeliverable",
        "This message was not delivered to all recipients.\r\n\r\n"
        "Delivered to:\r\n  b1@example.org\r\n\r\n"
        "Not delivered to:\r\n  b2@example.org\r\n    550 5.1.1 No such user\r\n",
    )
    mercury = _text(
        "Delivery failure",
        "The following message could not be delivered to its intended recipient\r\n"
        "because the address c1@example.org was not recognised.\r\n",
        sender='"Mercury 32" <postmaster@m.example.org>',
    )
    chinese = _text(
        "退信",
        "很抱歉您的邮件没有发送成功。\r\n\r\n收件人: d1@example.cn\r\n原因: 550 用户不存在\r\n",
        sender="postmaster@mail.example.cn",
    )
    expected = {
        mixed: [("b2@example.org", 2)],
        mercury: [("c1@example.org", 2)],
        chinese: [("d1@example.cn", 2)],
    }
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_a_report_lists_only_its_failed_and_delayed_recipients() -> None:
    mail = _dsn(
        "Original-Recipient: rfc822;<a1@example.org>\r\n"
        "Final-Recipient: rfc822;<a1.real@inner.example.org>\r\n"
        "Action: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
        "Final-Recipient: rfc822;a2@example.org\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
        "Final-Recipient: rfc822;a3@example.org\r\nAction: relayed\r\nStatus: 2.0.0\r\n\r\n"
        "Final-Recipient: rfc822;a4@example.org\r\nAction: delayed\r\nStatus: 4.2.2\r\n"
        "Diagnostic-Code: smtp; 452 4.2.2 mailbox full\r\n"
    )
    _, verdicts = classify_mail(mail)
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("a1@example.org", 2, "failed"),
        ("a4@example.org", 5, "deferred"),
    ]


def test_address_lines_without_brackets_or_reply_code() -> None:
    # Sendmail's own "x@y... User unknown", a reply naming the address without brackets,
    # and an "Addressee:" label: each line names the failed recipient and its reason.
    for line, status in (
        ("u@example.org... User unknown", 2),
        ("550 5.1.1 u@example.org: user does not exist", 2),
        ("Addressee: u@example.org\r\nReason: 552 5.2.2 mailbox full", 5),
    ):
        mail = _text("Returned mail", f"Your message could not be delivered.\r\n\r\n{line}\r\n")
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == [("u@example.org", status)], line


def test_a_sendmail_transcript_after_a_transient_section_is_not_its_recipients_reason() -> None:
    # The transcript quotes the permanent recipient's reply; the transient one has its own.
    body = (
        "   ----- The following addresses had permanent fatal errors -----\r\n"
        "<full@example.org>\r\n    (reason: 552 5.2.2 Over quota)\r\n\r\n"
        "   ----- The following addresses had transient non-fatal errors -----\r\n"
        "<slow@example.net>\r\n    (reason: 451 4.3.0 Temporary local problem)\r\n\r\n"
        "   ----- Transcript of session follows -----\r\n"
        "... while talking to mx.example.org.:\r\n>>> DATA\r\n<<< 552 5.2.2 Over quota\r\n"
    )
    _, verdicts = classify_mail(_text("Returned mail: see transcript for details", body))
    found = {v.recipient: (v.status, v.delivery) for v in verdicts}
    assert found == {"full@example.org": (5, "failed"), "slow@example.net": (7, "deferred")}


def test_a_sendmail_summary_without_a_reply_is_completed_by_the_transcript() -> None:
    body = (
        "   ----- The following addresses had permanent fatal errors -----\r\n"
        "<u@example.org>\r\n    (reason: Insufficient permission)\r\n\r\n"
        "   ----- Transcript of session follows -----\r\n"
        "maildrop: maildir over quota.\r\n"
        "550 5.0.0 <u@example.org>... Insufficient permission\r\n"
    )
    _, verdicts = classify_mail(_text("Returned mail: see transcript for details", body))
    assert [(v.recipient, v.status) for v in verdicts] == [("u@example.org", 5)]


def test_courier_reports_only_its_undeliverable_section() -> None:
    # courier/module.dsn: a relayed recipient ("MESSAGE DELIVERED TO A MAIL GATEWAY") beside
    # a failed one ("UNDELIVERABLE MAIL").
    body = (
        "This is a delivery status notification from mx.example.org,\r\n"
        "running the Courier mail server, version 1.1.\r\n\r\n"
        + "-"
        * 75
        + "\r\n\r\n                   MESSAGE DELIVERED TO A MAIL GATEWAY\r\n\r\n"
        "Unless your message is eventually returned undeliverable, you may not\r\n"
        "receive any further delivery notices for the following addresses:\r\n\r\n"
        "<relayed@example.net>:\r\n    [192.0.2.7]:\r\n<<< 250 ok 931200942 qp 25258\r\n\r\n"
        + "-"
        * 75
        + "\r\n\r\n                           UNDELIVERABLE MAIL\r\n\r\n"
        "Your message to the following recipients cannot be delivered:\r\n\r\n"
        "<gone@example.org>:\r\n    mx.example.org [192.0.2.1]:\r\n"
        ">>> RCPT TO:<gone@example.org>\r\n"
        "<<< 550 Sorry, no mailbox here by that name. (#5.1.1)\r\n\r\n" + "-" * 75 + "\r\n"
    )
    _, verdicts = classify_mail(
        _text("NOTICE: mail delivery status.", body, sender="Courier mail server <@>")
    )
    assert [(v.recipient, v.status) for v in verdicts] == [("gone@example.org", 2)]


def test_notices_of_older_mtas_and_webmail_providers() -> None:
    netscape = _text(
        "Delivery failed",
        "This Message was undeliverable due to the following reason:\r\n\r\n"
        "The following destination addresses were unknown (please check\r\n"
        "the addresses and re-mail the message):\r\n\r\nSMTP <n1@example.org>\r\n",
    )
    qq = _text(
        "退信",
        "很抱歉您发送的邮件被退回，以下是该邮件的相关信息：\r\n"
        "无法发送到 q1@example.cn\r\n退信原因 收件人邮箱已满\r\n",
        sender="PostMaster <postmaster@qq.example.cn>",
    )
    mailru = _text(
        "Mail failure.",
        "Message was not accepted -- invalid mailbox.  Local mailbox m1@example.ru is\r\n"
        "unavailable: user is terminated\r\n",
    )
    tonline = _text(
        "Mail delivery failed: returning message to sender",
        "|------------------------- Failed addresses follow: ---------------------|\r\n"
        " <t1@example.de> ... unknown user / Teilnehmer existiert nicht\r\n"
        "|------------------------- Message text follows: ------------------------|\r\n",
    )
    expected = {
        netscape: [("n1@example.org", 2)],
        qq: [("q1@example.cn", 5)],
        mailru: [("m1@example.ru", 2)],
        tonline: [("t1@example.de", 2)],
    }
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_an_mtas_own_sentence_about_the_recipient() -> None:
    # The reporting MTA's own words, no SMTP reply: "User unknown" after the sentence that
    # names the address is its verdict, and Microsoft SMTP Service's "unable to connect"
    # notice comes once its retries ran out.
    sentence = _text(
        "Undeliverable mail", "Your mail to u1@example.org was undeliverable: User unknown.\r\n"
    )
    smtpsvc = _text(
        "Delivery Status Notification (Failure)",
        "This is an automatically generated Delivery Status Notification.\r\n\r\n"
        "Unable to deliver message to the following recipients, due to being unable to "
        "connect successfully to the destination mail server.\r\n\r\n       u2@example.org\r\n",
        sender="postmaster@mx.example.org",
    )
    expected = {sentence: [("u1@example.org", 2)], smtpsvc: [("u2@example.org", 3)]}
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_report_fields_written_in_a_notices_own_layout() -> None:
    # ZMailer: each field name on its line, the value indented below; the final recipient
    # (where a forwarding led) is no recipient of its own.
    zmailer = _text(
        "Delivery reports about your email [FAILED(1)]",
        "This is a collection of reports about email delivery\r\n"
        "process concerning a message you originated.\r\n\r\n"
        "FAILED:\r\n  Original Recipient:\r\n    rfc822;z1@example.org\r\n"
        "  Final Recipient:\r\n    RFC822;moved@example.net\r\n"
        "  Action: failed\r\n  Status: 5.0.0 (permanent failure)\r\n"
        "  Diagnostic Code:\r\n    smtp; 550 5.1.1 <moved@example.net>... User unknown\r\n",
        sender="The Post Office <postmaster@mx.example.org>",
    )
    # The fields on the address's line: only the failed one is reported.
    inline = _text(
        "Delivery Status Notification",
        "- These recipients of your message have been processed by the mail server:\r\n\r\n"
        "f1@example.org; Action: Failed; Status: 5.2.2 (mailbox full)\r\n"
        "    Remote MTA mx.example.org: SMTP diagnostic: 552 Mailbox quota exceeded\r\n\r\n"
        "d1@example.org; Action: Delivered; Status: 2.0.0\r\n",
    )
    _, verdicts = classify_mail(zmailer)
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("z1@example.org", 2, "moved@example.net")
    ]
    _, verdicts = classify_mail(inline)
    assert [(v.recipient, v.status) for v in verdicts] == [("f1@example.org", 5)]


def _with_header(mail: bytes, header: str) -> bytes:
    return f"{header}\r\n".encode() + mail


def test_a_filtering_gateways_notice_makes_unknown_user_words_its_verdict() -> None:
    # issue 16, round 7: McAfee's gateway, SurfControl and MXLogic report "No such user" at
    # no named stage: the filter's verdict (4), where another MTA's notice says a missing
    # mailbox (2); a 5.1.1 still says a missing mailbox.
    fields = "Final-Recipient: rfc822; u@example.org\r\nAction: failed\r\n"
    words = f"{fields}Diagnostic-Code: smtp; 550 u@example.org... No such user\r\n"
    plain = _dsn(words)
    assert [v.status for v in classify_mail(plain)[1]] == [2]
    for header in (
        "X-NAI-Header: Modified by McAfee Email Gateway (4500)",
        "X-Mailer: SurfControl E-mail Filter",
    ):
        assert [v.status for v in classify_mail(_with_header(plain, header))[1]] == [4]
    coded = _dsn(f"{fields}Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n")
    mcafee = "X-NAI-Header: Modified by McAfee Email Gateway (4500)"
    assert [v.status for v in classify_mail(_with_header(coded, mcafee))[1]] == [2]
    mxlogic = _text(
        "Mail delivery failed",
        "A message that you have sent could not be delivered to one or more\r\n"
        "recipients.  This is a permanent error.  The following address failed:\r\n\r\n"
        "  <u@example.org>: 550 unknown user\r\n",
        sender="MAILER-DAEMON@0001.mxlogic.net",
    )
    assert [(v.recipient, v.status) for v in classify_mail(mxlogic)[1]] == [("u@example.org", 4)]
    mailfoundry = _text(
        "Message delivery has failed",
        "Unable to deliver message to: <u@example.org>\r\n"
        "Delivery failed for the following reason:\r\n"
        "Server mx.example.org[192.0.2.1] failed with: 550 <u@example.org> No such user here\r\n",
    )
    assert [v.status for v in classify_mail(mailfoundry)[1]] == [4]


def test_a_japanese_carriers_unknown_user_is_its_users_filter() -> None:
    # docomo, au and SoftBank answer "User unknown" also when their user's receive filter
    # refuses the sender: only their own recipients are read so.
    body = (
        "   ----- The following addresses had permanent fatal errors -----\r\n"
        "<u@docomo.ne.jp>\r\n    (reason: 550 User unknown)\r\n"
        "<v@example.org>\r\n    (reason: 550 User unknown)\r\n"
    )
    _, verdicts = classify_mail(_text("Returned mail: see transcript for details", body))
    assert {v.recipient: v.status for v in verdicts} == {
        "u@docomo.ne.jp": 4,
        "v@example.org": 2,
    }


def test_powermtas_bounce_category_is_its_own_verdict() -> None:
    # X-PowerMTA-BounceCategory states PowerMTA's verdict: "bad-mailbox" is a missing
    # mailbox even where the code (5.2.1) and words alone would read as a filter's.
    fields = (
        "Final-Recipient: rfc822; u@example.org\r\nAction: failed\r\nStatus: 5.2.1\r\n"
        "Diagnostic-Code: smtp;550 5.2.1 <u@example.org>... User Unknown\r\n"
    )
    assert [v.status for v in classify_mail(_dsn(fields))[1]] == [4]
    bad = fields + "X-PowerMTA-BounceCategory: bad-mailbox\r\n"
    assert [v.status for v in classify_mail(_dsn(bad))[1]] == [2]
    full = (
        fields.replace("User Unknown", "Over quota") + "X-PowerMTA-BounceCategory: quota-issues\r\n"
    )
    assert [v.status for v in classify_mail(_dsn(full))[1]] == [5]
    other = fields + "X-PowerMTA-BounceCategory: other\r\n"
    assert [v.status for v in classify_mail(_dsn(other))[1]] == [4]


def test_a_sendmail_transcript_names_the_stage_of_its_recipients_reply() -> None:
    # ">>> DATA" then the reply and the recipient's line: the refusal came after DATA, so
    # the generic words are a filter's verdict; after ">>> RCPT To:" a missing mailbox.
    def notice(command: str) -> bytes:
        body = (
            "   ----- The following addresses had permanent fatal errors -----\r\n"
            "<u@example.org>\r\n"
            "    (reason: 550 5.0.0 <u@example.org>... User unknown)\r\n\r\n"
            "   ----- Transcript of session follows -----\r\n"
            f"... while talking to mx.example.org.:\r\n>>> {command}\r\n"
            "<<< 550 5.0.0 <u@example.org>... User unknown\r\n"
            "550 5.1.1 <u@example.org>... User unknown\r\n"
            "<<< 503 5.0.0 Need RCPT (recipient)\r\n"
        )
        return _text("Returned mail: see transcript for details", body)

    assert [v.status for v in classify_mail(notice("DATA"))[1]] == [4]
    assert [v.status for v in classify_mail(notice("RCPT To:<u@example.org>"))[1]] == [2]


def test_the_formats_hints_and_verdict_fields_name_known_reasons_and_stages() -> None:
    from postline.bounce.classify import _COMMANDS, reply_rules
    from postline.bounce.mail.textformat import mail_formats

    formats, reasons = mail_formats(), reply_rules().reasons
    for hint in formats.hints:
        assert not hint.reason or hint.reason in reasons
        assert not hint.command or hint.command in _COMMANDS
    for values in formats.verdict_fields.values():
        assert set(values.values()) <= reasons.keys()


def test_challenge_response_and_list_mail_are_no_bounces() -> None:
    # A challenge-response system holds the mail until the sender confirms: the address is
    # live, whatever words of delivery software the request uses (TMDA).
    tmda = _text(
        "Please confirm your message",
        "This message was created automatically by mail delivery software (TMDA).\r\n\r\n"
        "Your message attached below is being held because the address\r\n"
        "<bounces@example.test> has not been verified.\r\n\r\n"
        "To release your message for delivery, please send an empty message\r\n"
        'to the following address, or use your mailer\'s "Reply" feature.\r\n\r\n'
        "   joe-confirm-1.abcd@example.org\r\n",
        sender="joe-confirm-1.abcd@example.org",
    )
    spam_arrest = _text(
        "Re: Hello [SpamArrest]",
        "I apologize for this automatic reply to your email.\r\n\r\nTo control spam, I now "
        "allow incoming messages only from senders I have approved beforehand.\r\n",
        sender='"Joe (Spam Arrest)" <joe@example.org>',
    )
    boxbe = _text(
        "Request to join my Guest List (Hello)",
        'Your message about "Hello" was waitlisted.\r\n\r\nPlease add yourself to my Guest '
        "List so your messages will be delivered to my Inbox.\r\n",
        sender='"Joe via Boxbe" <notifications@boxbe.example>',
    )
    # A list's digest quotes bounce words; a list manager's moderation notice is no failure.
    digest = _text(
        "List Digest, Vol 12, Issue 3",
        "Today's Topics:\r\n\r\n   1. returned mail (Bob)\r\n\r\nMessage: 1\r\n"
        "From: ann@example.net\r\n\r\nThe mail system said: user unknown\r\n",
        sender="list-request@lists.example.org",
    )
    majordomo = _text(
        "BOUNCE list@lists.example.org:    Non-member submission from [bounces@example.test]",
        "From: app@example.test\r\nTo: list@lists.example.org\r\n\r\nHello\r\n",
        sender="owner-list@lists.example.org",
    )
    for mail in (tmda, spam_arrest, boxbe, digest, majordomo):
        report, verdicts = classify_mail(mail)
        assert report.kind is not Kind.BOUNCE and verdicts == []


def test_list_managers_notices_name_the_address_sent_to() -> None:
    # A list refusing the post: the list's address failed (a policy's refusal, 4).
    sympa = _text(
        "Message distribution: Forbidden",
        "Your message for list list@lists.example.org has been rejected.\r\n"
        "You are not allowed to send messages to this list.\r\n",
        sender="sympa@lists.example.org",
    )
    # LISTSERV's "Error delivering to x:" with the remote reply.
    listserv = _text(
        'Message "Hello"',
        "Error delivering to l1@example.org:\r\n550 5.1.1 <l1@example.org>... User unknown\r\n",
        sender="L-Soft list server at LISTSERV.EXAMPLE.EDU <LISTSERV@LISTSERV.EXAMPLE.EDU>",
    )
    expected = {sympa: [("list@lists.example.org", 4)], listserv: [("l1@example.org", 2)]}
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_notices_of_gateways_webmail_and_older_servers_of_round_8() -> None:
    # Trend Micro InterScan MSS: its transcript's arrows the other way round.
    interscan = _text(
        "Mail could not be delivered",
        "Sent <<< RCPT TO:<i1@example.org>\r\n"
        "Received >>> 550 5.1.1 <i1@example.org>... user unknown\r\n",
        sender='"InterScan MSS" <postmaster@imss.example.org>',
    )
    # Barracuda: "has NOT BEEN DELIVERED" is a failure, not a delay.
    barracuda = _text(
        "Message you sent blocked by our bulk email filter",
        "Your message to: b1@example.org\r\nwas blocked by our Spam Firewall. The email you "
        "sent with the following subject has NOT BEEN DELIVERED:\r\n\r\nSubject: Hello\r\n",
    )
    proofpoint = _text(
        "Undeliverable: Hello",
        "Your message to p1@example.org was rejected for policy reasons.\r\n\r\n"
        "554 5.7.1 Message blocked due to spam content in the message.\r\n",
    )
    sohu = _text("退信", "您发给 s1@example.cn 的信件未能送达。\r\n原因：用户不存在\r\n")
    exchange2000 = _text(
        "Undeliverable: Hello",
        "The following message to <e1@example.org> was undeliverable.\r\n"
        "The reason for the problem:\r\n"
        "5.1.0 - Unknown address error 550-'e1@example.org... No such user'\r\n",
        sender="postmaster@example.org",
    )
    local = _text(
        "Delivery failure",
        "Delivery failed for the following reason:\r\n"
        "Local delivery to d1@example.org failed: mailbox is full\r\n",
    )
    expected = {
        interscan: [("i1@example.org", 2, "failed")],
        barracuda: [("b1@example.org", 4, "failed")],
        proofpoint: [("p1@example.org", 4, "failed")],
        sohu: [("s1@example.cn", 2, "failed")],
        exchange2000: [("e1@example.org", 2, "failed")],
        local: [("d1@example.org", 5, "failed")],
    }
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status, v.delivery) for v in verdicts] == want


def test_messaging_servers_original_address_is_the_recipient() -> None:
    # Sun Java System / Oracle Messaging Server and PMDF: "Recipient address:" is where the
    # alias led, "Original address:" on the next line the address the mail was sent to.
    notice = _text(
        "Delivery Notification: Delivery has failed",
        "Your message cannot be delivered to the following recipients:\r\n\r\n"
        "  Recipient address: final@mail.example.org\r\n"
        "  Original address: sent@example.org\r\n"
        "  Reason: Remote SMTP server has rejected address\r\n"
        "  Diagnostic code: smtp;550 5.1.1 unknown or illegal alias: final@mail.example.org\r\n",
        sender="Internet Mail Delivery <postmaster@ims.example.org>",
    )
    _, verdicts = classify_mail(notice)
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("sent@example.org", 2, "final@mail.example.org")
    ]


def test_delay_notices_of_exchange_and_domino_are_deferrals() -> None:
    # "has not been delivered to" heads Exchange's and Domino's delay notices (their failures
    # say "did not reach" / "was not delivered to"); Exchange 2007 writes its own heading.
    exchange2003 = _text(
        "Delayed: Hello",
        "Your message\r\n\r\n  To:      x1@example.org\r\n  Subject: Hello\r\n\r\n"
        "has not been delivered to the following recipients:\r\n\r\n"
        "x1@example.org on Mon, 1 Jan 2007\r\n"
        "    Could not deliver the message in the time limit specified. Please retry or "
        "contact your administrator.\r\n    <mx.example.org #4.4.7>\r\n",
        sender="postmaster@example.org",
    )
    exchange2007 = _text(
        "Delay: Hello",
        "Delivery is delayed to these recipients or groups:\r\n\r\nx2@example.org\r\n\r\n"
        "This message hasn't been delivered yet. Delivery will continue to be attempted.\r\n",
        sender="Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.org>",
    )
    domino = _text(
        "DELIVERY DELAYED: Hello",
        "Your message\r\n\r\n  Subject: Hello\r\n\r\nhas not been delivered to:\r\n\r\n"
        "  x3@example.org\r\n\r\nbecause:\r\n\r\n"
        "  Unable to connect to mx.example.org; retrying\r\n",
        sender="Postmaster@example.org",
    )
    for mail, address in ((exchange2003, "x1"), (exchange2007, "x2"), (domino, "x3")):
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.delivery) for v in verdicts] == [
            (f"{address}@example.org", "deferred")
        ]


def test_a_sentence_naming_the_recipient_gives_its_reason() -> None:
    # The reason is in the sentence that names the address, before it and after it.
    sentence = _text(
        "Undeliverable mail",
        "The following message could not be delivered because the address "
        "y1@example.org does not exist.\r\n",
    )
    # Microsoft SMTP Service's notice of a mailbox it could not find.
    smtpsvc = _text(
        "Delivery Status Notification (Failure)",
        "This is an automatically generated Delivery Status Notification.\r\n\r\n"
        "Unable to deliver message to the following recipients, due to being unable to find "
        "the destination mailbox.\r\n\r\n       y2@example.org\r\n",
        sender="postmaster@example.org",
    )
    expected = {sentence: [("y1@example.org", 2)], smtpsvc: [("y2@example.org", 2)]}
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_an_expanded_address_named_again_by_the_transcript_is_no_recipient_of_its_own() -> None:
    # Sendmail: the list alias the mail was sent to, the member it expanded to, and the
    # transcript's reply naming that member: one recipient, the address sent to.
    notice = _text(
        "Returned mail: see transcript for details",
        "   ----- The following addresses had permanent fatal errors -----\r\n"
        "m1@example.org\r\n    (expanded from: list@example.org)\r\n\r\n"
        "   ----- Transcript of session follows -----\r\n"
        "550 m1@example.org... User unknown\r\n",
    )
    _, verdicts = classify_mail(notice)
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("list@example.org", 2, "m1@example.org")
    ]


def test_a_heading_naming_the_sender_gives_the_reason_of_its_recipients() -> None:
    # AOL: the reason is in the heading, which names the sender (refused by the recipient's
    # own setting: a refusal, not a dead address); Exchange's "[SMTP:x]" address type.
    aol = _text(
        "Returned mail",
        "Your mail to the following recipients could not be delivered because they are not "
        "accepting mail from bounces@example.test:\r\n\tz1@example.org\r\n",
    )
    exchange = _text(
        "Undeliverable: Hello",
        "Your message was not delivered.\r\n\r\nRecipient: [SMTP:z2@example.org]\r\n"
        "Reason: The recipient name is not recognized\r\n",
        sender="postmaster@example.org",
    )
    expected = {aol: [("z1@example.org", 4)], exchange: [("z2@example.org", 2)]}
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_recipients_named_with_a_display_name_a_bullet_or_only_in_the_subject() -> None:
    display = _text(
        "Undeliverable mail",
        "Delivery to the following recipients failed:\r\n\r\n    Joe Bloggs <w1@example.org>\r\n"
        "\r\nReason: 550 5.1.1 User unknown\r\n",
    )
    parenthesised = _text(
        "Undeliverable: Hello",
        "Delivery has failed to these recipients or groups:\r\n\r\nJoe (w2@example.org)\r\n"
        "The email address you entered couldn't be found.\r\n",
        sender="postmaster@example.org",
    )
    bullets = _text(
        "Undeliverable mail",
        "The following recipients could not be reached:\r\n\r\n"
        "  * w3@example.org: 550 5.1.1 User unknown\r\n"
        "  * w4@example.org: 552 5.2.2 Mailbox full\r\n",
    )
    subject = _text(
        "Returned mail: w5@example.org... Mailbox full",
        "The message could not be delivered.\r\n\r\nReason: mailbox full\r\n",
    )
    # A reply naming the address is no display name: m-FILTER's "550 unknown user <x>".
    reply = _text(
        "Undeliverable mail",
        "The following address failed:\r\nw6@example.org\r\n\r\n-------server message\r\n"
        "550 unknown user <w6@example.org>\r\n\r\n-------SMTP command\r\nDATA\r\n",
    )
    expected = {
        display: [("w1@example.org", 2)],
        parenthesised: [("w2@example.org", 2)],
        bullets: [("w3@example.org", 2), ("w4@example.org", 5)],
        subject: [("w5@example.org", 5)],
        reply: [("w6@example.org", 4)],
    }
    for mail, want in expected.items():
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == want


def test_a_notice_naming_nobody_reads_a_lists_verp_address_or_a_bare_local_part() -> None:
    def vague(to: str, body: str) -> bytes:
        return (
            "From: MAILER-DAEMON@mx.example.org\r\n"
            f"To: {to}\r\nSubject: Undeliverable mail\r\n"
            f"Content-Type: text/plain\r\n\r\n{body}"
        ).encode()

    # Mailman's and ezmlm's VERP return paths encode the member the list sent to.
    mailman = vague(
        "list-bounces+v1=example.org@lists.example.org",
        "Your message could not be delivered.\r\nThe mailbox is full.\r\n",
    )
    ezmlm = vague(
        "list-return-1234-v2=example.org@lists.example.org",
        "Sorry, your message could not be delivered.\r\nUser unknown.\r\n",
    )
    # Postline's own VERP address encodes a delivery, not a recipient.
    own = vague("bounce-0123abcd@bounces.example.test", "Your message could not be delivered.\r\n")
    # An older Sendmail names the local part only; the returned message's To has two.
    sendmail = _text(
        "Returned mail: User unknown",
        "   ----- Transcript of session follows -----\r\n550 v3... User unknown\r\n\r\n"
        "   ----- Unsent message follows -----\r\nFrom: app@example.test\r\n"
        "To: v3@example.org, v4@example.org\r\nSubject: Hello\r\n\r\nHello\r\n",
    )
    expected = {
        mailman: [("v1@example.org", 5)],
        ezmlm: [("v2@example.org", 2)],
        own: [],
        sendmail: [("v3@example.org", 2)],
    }
    for mail, want in expected.items():
        # The same with CRLF line ends (as the mails are written here) and with LF.
        for raw in (mail, mail.replace(b"\r\n", b"\n")):
            _, verdicts = classify_mail(raw)
            assert [(v.recipient, v.status) for v in verdicts] == want


def test_short_sentences_and_address_types_that_name_the_recipient() -> None:
    notices = {
        "Nondeliverable mail to u1@example.org: user unknown\r\n": ("u1@example.org", 2),
        "Delivery failed to u2@example.org\r\nReason: 550 5.1.1 User unknown\r\n": (
            "u2@example.org",
            2,
        ),
        "The message to u3@example.org is bounced because : Quota exceed the hard limit\r\n": (
            "u3@example.org",
            5,
        ),
        # Exchange 5.5 and X.400 gateways write the address type before the address.
        "did not reach the following recipient(s):\r\n\r\n    SMTP:u4@example.org\r\n"
        "    The recipient name is not recognized\r\n": ("u4@example.org", 2),
    }
    for body, want in notices.items():
        _, verdicts = classify_mail(_text("Undeliverable mail", body))
        assert [(v.recipient, v.status) for v in verdicts] == [want]


def test_a_temporary_reply_failed_after_days_in_the_queue_is_a_resend_timeout() -> None:
    # Postfix returns a message whose last reply was temporary once its queue lifetime has
    # run out: Arrival-Date to Last-Attempt-Date says how long it kept trying (RFC 3464).
    def held(until: str, reply: str) -> tuple[int, str]:
        mail = _dsn(
            "Final-Recipient: rfc822;bob@example.org\r\nAction: failed\r\nStatus: 4.0.0\r\n"
            f"Last-Attempt-Date: {until}\r\nDiagnostic-Code: smtp; {reply}\r\n"
        ).replace(
            b"Reporting-MTA: dns; mx.example.org\r\n",
            b"Reporting-MTA: dns; mx.example.org\r\n"
            b"Arrival-Date: Mon, 1 Jan 2024 08:00:00 +0100\r\n",
        )
        _, verdicts = classify_mail(mail)
        return verdicts[0].status, verdicts[0].rule

    vague = "451 4.0.0 Temporary failure, please try again later"
    assert held("Sat, 6 Jan 2024 08:05:00 +0100", vague) == (3, "expired")
    # At once (a remote's temporary reply turned into a failure), it names no reason;
    # after days, a reply that names one keeps it.
    assert held("Mon, 1 Jan 2024 08:01:00 +0100", vague) == (99, "on-hold")
    assert held("Sat, 6 Jan 2024 08:05:00 +0100", "452 4.2.2 Mailbox full")[0] == 5


_POSTFIX_INTRO = (
    "This is the mail system at host mx.example.net.\r\n\r\n"
    "I'm sorry to have to inform you that your message could not\r\n"
    "be delivered to one or more recipients. It's attached below.\r\n\r\n"
    "                   The mail system\r\n\r\n"
)


def test_a_reply_naming_the_senders_address_on_its_next_line_is_no_recipient() -> None:
    # Postfix wraps "said: 550 5.1.1" and goes on with the reply on an indented line that
    # starts with the address the reply names: here the sender's own bounce address.
    body = _POSTFIX_INTRO + (
        "<relay1234@relay.example.org>: host mx.relay.example.org[192.0.2.7] said: 550\r\n"
        "    5.1.1\r\n"
        "    <bounces+5678@sender.example.com>: unauthorized sender (in reply to RCPT TO\r\n"
        "    command)\r\n"
    )
    for mail in (_text("Undelivered Mail Returned to Sender", body), body.encode()):
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == [("relay1234@relay.example.org", 4)]


def test_the_returned_messages_sender_is_no_recipient() -> None:
    # Exchange Online's NDR text ends with "Sender Address: x"; the returned message's
    # own From names the same address: no failure of it.
    body = (
        "Delivery has failed to these recipients or groups:\r\n\r\n"
        "joe@example.org<mailto:joe@example.org>\r\n"
        "The email address you entered couldn't be found.\r\n\r\n"
        "Diagnostic information for administrators:\r\n\r\n"
        "Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not"
        " found by SMTP address lookup'\r\n\r\n"
        "Original message headers:\r\n\r\n"
        "From: App <app@example.test>\r\nTo: <joe@example.org>\r\nSubject: Hello\r\n\r\n"
        "Sender Address: app@example.test\r\n"
    )
    _, verdicts = classify_mail(_text("Undeliverable: Hello", body, "postmaster@example.org"))
    assert [(v.recipient, v.status) for v in verdicts] == [("joe@example.org", 2)]


def test_a_remote_replys_temporary_words_do_not_make_a_final_notice_a_delay() -> None:
    # Postfix returned the mail (a final failure) after the destination's 421 "temporarily
    # deferred": the reply's words say how the server answered, not that Postfix retries.
    body = _POSTFIX_INTRO + (
        "<ann@example.org>: host mx.example.org[192.0.2.9] said: 421 4.7.0 [TSS04]\r\n"
        "    Messages from 192.0.2.1 temporarily deferred due to unexpected volume or\r\n"
        "    user complaints (in reply to MAIL FROM command)\r\n"
    )
    _, verdicts = classify_mail(_text("Undelivered Mail Returned to Sender", body))
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("ann@example.org", 4, "failed")
    ]
    # The notice's own words still make a delay notice one.
    warning = body.replace(
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.",
        "This is a warning only. Your message could not be delivered for 4 hours;\r\n"
        "the mail system will continue trying.",
    )
    _, verdicts = classify_mail(_text("Delayed Mail (still being retried)", warning))
    assert [v.delivery for v in verdicts] == ["deferred"]


def test_a_notice_text_without_headers_is_read_by_its_words() -> None:
    # A notice's text alone (`postline bounce classify` given one, or a relay that passed
    # on only the text): Gmail's and Exchange's notice wordings say what it is.
    gmail = (
        "\r\n** Address not found **\r\n\r\n"
        "Your message wasn't delivered to joe@example.org because the address couldn't be"
        " found, or is unable to receive mail.\r\n\r\n"
        "The response from the remote server was:\r\n"
        "550 5.1.1 The email account that you tried to reach does not exist.\r\n"
    )
    exchange = (
        "mx.example.org rejected your message to the following email addresses:\r\n\r\n"
        "ann@example.org<mailto:ann@example.org> The address couldn't be found.\r\n\r\n"
        "Diagnostic information for administrators:\r\n\r\n"
        "ann@example.org mx.example.org Remote Server returned '550 5.1.1 User unknown'\r\n"
    )
    for notice, want in ((gmail, ("joe@example.org", 2)), (exchange, ("ann@example.org", 2))):
        report, verdicts = classify_mail(notice.encode())
        assert report.kind is Kind.BOUNCE
        assert [(v.recipient, v.status) for v in verdicts] == [want]
    # An ordinary text, with or without headers, stays no bounce.
    chat = "Hi Joe,\r\n\r\nyour message was lovely; see you at 5 at joe@example.org's.\r\n"
    assert parse_bounce(chat.encode()).kind is not Kind.BOUNCE
    assert parse_bounce(_text("Re: Hello", chat, "ann@example.org")).kind is not Kind.BOUNCE


def test_notice_wordings_read_without_headers_even_when_wrapped() -> None:
    # Each notice text alone (no From, no Subject) is read by its wording; a sentence the
    # notice wraps ("could not\nbe delivered") is still that sentence.
    notices = {
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n\r\n"
        "<u1@example.org>: 550 5.1.1 User unknown\r\n": ("u1@example.org", 2),
        "This is the Postfix program at host mx.example.net.\r\n\r\n"
        "<u2@example.org>: host mx.example.org[192.0.2.1] said: 552 5.2.2 Mailbox full\r\n": (
            "u2@example.org",
            5,
        ),
        "   ----- Transcript of session follows -----\r\n"
        "550 5.1.1 <u3@example.org>... User unknown\r\n": ("u3@example.org", 2),
        "Your message could not be sent.\r\n"
        "u4@example.org: [192.0.2.4], 550 5.1.1 No such user\r\n": ("u4@example.org", 2),
        "Échec de la remise pour ces destinataires ou groupes :\r\n\r\n"
        "u5@example.org\r\nRemote Server returned '550 5.1.1 User unknown'\r\n": (
            "u5@example.org",
            2,
        ),
        "------- Failure Reasons  --------\r\n\r\nUser not listed in public Name & Address"
        " Book\r\nu6@example.org\r\n": ("u6@example.org", 2),
    }
    for notice, want in notices.items():
        report, verdicts = classify_mail(notice.encode())
        assert report.kind is Kind.BOUNCE, notice
        assert [(v.recipient, v.status) for v in verdicts] == [want], notice


_EXIM_DELAY = (
    "This message was created automatically by mail delivery software.\r\n"
    "A message that you sent has not yet been delivered to one or more of its\r\n"
    "recipients after more than 24 hours on the queue on mx.example.org.\r\n\r\n"
    "The addresses to which the message has not yet been delivered are:\r\n\r\n"
)
_EXIM_FAILED = (
    "This message was created automatically by mail delivery software.\r\n\r\n"
    "A message that you sent could not be delivered to one or more of its\r\n"
    "recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
)
_EXIM_ANN_452 = (
    "  ann@example.org\r\n"
    "    Delay reason: SMTP error from remote mail server after RCPT TO:<ann@example.org>:\r\n"
    "    host mx.example.org [192.0.2.1]: 452 4.2.2 Over quota\r\n"
)


def test_a_recipient_listed_without_a_reason_takes_no_other_recipients_reason() -> None:
    # Each layout lists a second address after the first one's own reply: the second has
    # no reason of its own (or other words), never the first one's.
    exim_delay = _text(
        "Warning: message 1abc-000001-Xy delayed 24 hours",
        _EXIM_DELAY + _EXIM_ANN_452 + "  bob@example.org\r\n\r\n"
        "No action is required on your part. Delivery attempts will continue for\r\n"
        "some time, and this warning may be repeated at intervals if the message\r\n"
        "remains undelivered.\r\n",
    )
    _, verdicts = classify_mail(exim_delay)
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("ann@example.org", 5, "deferred"),
        ("bob@example.org", 3, "deferred"),  # a delay that names no reason
    ]
    exim_failed = _text(
        "Mail delivery failed: returning message to sender",
        _EXIM_FAILED + "  ann@example.org\r\n"
        "    SMTP error from remote mail server after RCPT TO:<ann@example.org>:\r\n"
        "    host mx.example.org [192.0.2.1]: 552 5.2.2 Mailbox full\r\n\r\n"
        "  bob@example.org\r\n    retry timeout exceeded\r\n",
    )
    _, verdicts = classify_mail(exim_failed)
    assert [(v.recipient, v.status) for v in verdicts] == [
        ("ann@example.org", 5),
        ("bob@example.org", 3),  # its own words
    ]
    sendmail = _text(
        "Returned mail: see transcript for details",
        "   ----- The following addresses had permanent fatal errors -----\r\n"
        "<ann@example.org>\r\n    (reason: 552 5.2.2 Mailbox full)\r\n<bob@example.org>\r\n",
    )
    _, verdicts = classify_mail(sendmail)
    assert [(v.recipient, v.status) for v in verdicts] == [
        ("ann@example.org", 5),
        ("bob@example.org", 99),  # failed, for no reason the notice gives
    ]


def test_addresses_listed_together_share_the_reason_after_or_before_them() -> None:
    # Listed one after the other with the reason after the last (Exim, Sendmail), or under
    # one reason stated before them: the reason is each one's.
    exim = _text(
        "Mail delivery failed: returning message to sender",
        _EXIM_FAILED + "  ann@example.org\r\n  bob@example.org\r\n"
        "    SMTP error from remote mail server after RCPT TO:<bob@example.org>:\r\n"
        "    host mx.example.org [192.0.2.1]: 550 5.1.1 User unknown\r\n",
    )
    sendmail = _text(
        "Returned mail: see transcript for details",
        "   ----- The following addresses had permanent fatal errors -----\r\n"
        "<ann@example.org>\r\n<bob@example.org>\r\n    (reason: 550 5.1.1 User unknown)\r\n",
    )
    stated_before = _text(
        "Undelivered Mail Returned to Sender",
        "The mail system: 550 5.1.1 user unknown\r\n\r\n<ann@example.org>\r\n<bob@example.org>\r\n",
    )
    for mail in (exim, sendmail, stated_before):
        _, verdicts = classify_mail(mail)
        assert [(v.recipient, v.status) for v in verdicts] == [
            ("ann@example.org", 2),
            ("bob@example.org", 2),
        ]


_QMAIL_LOOP = (
    "Hi. This is the qmail-send program at mx.example.org.\r\n"
    "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
    "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
    "<{failed}>:\r\n"
    "This message is looping: it already has my Delivered-To line. (#5.4.6)\r\n\r\n"
    "--- Below this line is a copy of the message.\r\n\r\n"
    "Return-Path: <bounces@example.test>\r\n"
)


def test_a_qmail_forwarding_reports_the_address_sent_to_by_its_delivered_to_lines() -> None:
    # qmail-local writes Delivered-To at each local delivery, a forwarding included: the
    # lines above the destination's own SMTP hop show the address sent to and where it led
    # (a virtual domain's "491-" prefix on both).
    body = _QMAIL_LOOP.format(failed="fwd@example.org") + (
        "Received: (qmail 2 invoked by uid 110); 9 Jun 2008 01:34:06 -0000\r\n"
        "Delivered-To: 491-fwd@example.org\r\n"
        "Received: (qmail 1 invoked by uid 110); 9 Jun 2008 01:34:06 -0000\r\n"
        "Delivered-To: 491-sales@example.org\r\n"
        "Received: from app.example.test (192.0.2.9) by mx.example.org with SMTP\r\n"
        "From: app@example.test\r\nTo: customers@example.test\r\nSubject: Hello\r\n\r\nHi\r\n"
    )
    _, verdicts = classify_mail(_text("failure notice", body))
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("sales@example.org", 7, "fwd@example.org")
    ]


def test_weak_evidence_of_another_address_keeps_the_address_the_notice_names() -> None:
    # Delivered-To lines below the destination's SMTP hop are the message's earlier life;
    # the returned message's To alone (bulk mail, Bcc, lists) says nothing of the envelope.
    earlier_life = _QMAIL_LOOP.format(failed="fwd@example.org") + (
        "Received: (qmail 2 invoked by uid 110); 9 Jun 2008 01:34:06 -0000\r\n"
        "Delivered-To: fwd@example.org\r\n"
        "Received: from app.example.test (192.0.2.9) by mx.example.org with SMTP\r\n"
        "Delivered-To: old@example.net\r\n"
        "From: app@example.test\r\nTo: old@example.net\r\nSubject: Hello\r\n\r\nHi\r\n"
    )
    header_to_only = (
        "User mailbox exceeds allowed size: owner@example.org\r\n\r\n\r\n"
        "Original message follows.\r\n\r\n"
        "Received: from app.example.test [192.0.2.9] by mx.example.org with ESMTP\r\n"
        "From: app@example.test\r\nTo: <info@example.org>\r\nSubject: Hello\r\n\r\nHi\r\n"
    )
    three_steps = _QMAIL_LOOP.format(failed="c@example.org") + (
        "Delivered-To: c@example.org\r\nDelivered-To: b@example.org\r\n"
        "Delivered-To: a@example.org\r\n"
        "From: app@example.test\r\nTo: a@example.org\r\nSubject: Hello\r\n\r\nHi\r\n"
    )
    for body, named in (
        (earlier_life, "fwd@example.org"),
        (header_to_only, "owner@example.org"),
        (three_steps, "c@example.org"),
    ):
        _, verdicts = classify_mail(_text("Undeliverable Mail", body))
        assert [v.recipient for v in verdicts] == [named]


def test_a_vpopmail_catch_all_that_could_not_take_the_mail_is_a_system_error() -> None:
    body = (
        "Hi. This is the qmail-send program at mx.example.org.\r\n"
        "I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        "This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        "<joe@example.org>:\r\n"
        "user does not exist, but will deliver to /home/vpopmail/domains/example.org/all/\r\n"
        "can not open new email file errno=2 file=/home/vpopmail/domains/example.org/all/"
        "Maildir/tmp/1.2.mx,S=3155\r\nsystem error\r\n"
    )
    _, verdicts = classify_mail(_text("failure notice", body))
    assert [(v.recipient, v.status) for v in verdicts] == [("joe@example.org", 7)]


def test_a_notice_whose_words_name_the_sender_keeps_the_recipients_unknown_user() -> None:
    # Round 32: the sender named in a notice's own words, its From or the returned
    # message's, is no subject of the remote's "user unknown" (sender_subject's reach).
    dsn = _dsn(
        "Final-Recipient: rfc822; lost@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 <lost@example.net>: Recipient address rejected: "
        "User unknown in virtual mailbox table\r\n",
        returned_to="lost@example.net",
        notice="The message from the sender <app@example.test> could not be delivered.\r\n",
    )
    _, verdicts = classify_mail(dsn)
    assert [(v.recipient, v.status) for v in verdicts] == [("lost@example.net", 2)]
    body = (
        "Your message from sender app@example.test could not be delivered to\r\n"
        "lost@example.net: 550 5.1.1 User unknown\r\n"
    )
    _, verdicts = classify_mail(
        _text("Undeliverable", body, sender="Sender Service <mailer-daemon@mx.example.org>")
    )
    assert [(v.recipient, v.status) for v in verdicts] == [("lost@example.net", 2)]


def _opensmtpd(subject: str, lines: str, fields: str, returned: str) -> bytes:
    # OpenSMTPD 6.8's layout: a text part, report fields, the returned message's headers.
    return (
        "From: Mailer Daemon <MAILER-DAEMON@mx.example.org>\r\n"
        f"To: bounces@example.test\r\nSubject: Delivery status notification: {subject}\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed;boundary="b/mx.example.org"\r\n\r\n'
        "--b/mx.example.org\r\nContent-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        "    Hi!\r\n\r\n    This is the MAILER-DAEMON, please DO NOT REPLY to this email.\r\n\r\n"
        f"{lines}\r\n"
        "    Below is a copy of the original message:\r\n\r\n"
        "--b/mx.example.org\r\nContent-Description: Delivery Report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; mx.example.org\r\n\r\n{fields}\r\n"
        "--b/mx.example.org\r\nContent-Description: Message headers\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{returned}From: News <news@example.test>\r\nSubject: Issue 4\r\n"
        "Message-ID: <m4@example.test>\r\n\r\n--b/mx.example.org--\r\n"
    ).encode()


_DELAY_LINES = (
    "    A message is delayed for more than 0 seconds for the following\r\n"
    "    list of recipients:\r\n\r\n"
    "{line}\r\n\r\n"
    "    Please note that this is only a temporary failure report.\r\n"
    "    The message is kept in the queue for up to 7 days.\r\n"
    "    You DO NOT NEED to re-send the message to these recipients.\r\n"
)


def test_an_expiry_written_on_a_delay_template_is_a_final_failure() -> None:
    # Round 36 (issue #16): OpenSMTPD reports an envelope it dropped at its queue lifetime on
    # its delay template (Action delayed, "only a temporary failure report"), its words
    # "Envelope expired": it sends no other notice, so read as deferred the message would
    # stay deferred for ever. Words of giving up outrank the template's.
    returned = "Received: from app.example.test by mx.example.org for <ada@example.net>;\r\n"
    returned += "To: ada@example.net\r\n"
    expired = _opensmtpd(
        "delayed",
        _DELAY_LINES.format(line="ada@example.net: Envelope expired"),
        "Final-Recipient: rfc822; ada@example.net\r\nAction: delayed\r\nStatus: 4.4.7\r\n",
        returned,
    )
    _, verdicts = classify_mail(expired)
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("ada@example.net", 3, "failed")
    ]
    # The same template with the remote server's temporary reply: still trying.
    waiting = _opensmtpd(
        "delayed",
        _DELAY_LINES.format(line="ada@example.net: 452 4.2.2 Mailbox is full"),
        "Final-Recipient: rfc822; ada@example.net\r\nAction: delayed\r\nStatus: 4.2.2\r\n",
        returned,
    )
    _, verdicts = classify_mail(waiting)
    assert [(v.recipient, v.status, v.delivery) for v in verdicts] == [
        ("ada@example.net", 5, "deferred")
    ]


def test_an_alias_reported_by_its_target_is_the_address_the_reporter_accepted() -> None:
    # Round 36 (issue #16): OpenSMTPD's notice for an alias whose target failed names only the
    # target (text and Final-Recipient, no Original-Recipient); the Received header it wrote
    # on taking the mail names the alias, the address sent to. It is reported, the target
    # kept as the final recipient.
    lines = (
        "    An error has occurred while attempting to deliver a message for\r\n"
        "    the following list of recipients:\r\n\r\n"
        "ada.l@example.net: 550 5.1.1 <ada.l@example.net>: Recipient address rejected: "
        "User unknown\r\n\r\n"
    )
    fields = "Final-Recipient: rfc822; ada.l@example.net\r\nAction: failed\r\nStatus: 5.0.0\r\n"
    own = (
        "Received: from app.example.test (localhost [127.0.0.1])\r\n"
        "\tby mx.example.org (OpenSMTPD) with ESMTP id 32f824c8\r\n"
        "\tfor <ada.lind@example.org>;\r\n\tSun, 6 Dec 2026 12:20:04 +0000 (UTC)\r\n"
        "To: ada.lind@example.org\r\n"
    )
    _, verdicts = classify_mail(_opensmtpd("failed", lines, fields, own))
    assert [(v.recipient, v.status, v.final_recipient) for v in verdicts] == [
        ("ada.lind@example.org", 2, "ada.l@example.net")
    ]
    # A Received "for" written by another host (the sender's own server, say) is what that
    # host was given, not what the reporter did with it: the notice's address stays.
    other = own.replace("by mx.example.org", "by out.example.test")
    _, verdicts = classify_mail(_opensmtpd("failed", lines, fields, other))
    assert [(v.recipient, v.final_recipient) for v in verdicts] == [("ada.l@example.net", "")]
    # An Original-Recipient says which address was sent to, whatever the headers.
    stated = "Original-Recipient: rfc822; ada.l@example.net\r\n" + fields
    _, verdicts = classify_mail(_opensmtpd("failed", lines, stated, own))
    assert [(v.recipient, v.final_recipient) for v in verdicts] == [("ada.l@example.net", "")]
    # The failed address in the returned message's own headers: it was sent to.
    named = own.replace("To: ada.lind@example.org", "To: ada.l@example.net")
    _, verdicts = classify_mail(_opensmtpd("failed", lines, fields, named))
    assert [(v.recipient, v.final_recipient) for v in verdicts] == [("ada.l@example.net", "")]
