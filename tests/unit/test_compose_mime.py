"""Composing RFC 5322 messages for the send API (pure: no broker)."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage, MIMEPart

from hypothesis import given, settings
from hypothesis import strategies as st

from postline.ingress.compose_mime import (
    Attachment,
    Draft,
    compose,
    header_problem,
    is_reserved_header,
)

NOW = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def draft(**changes: object) -> Draft:
    values: dict[str, object] = {
        "sender": "shop@example.test",
        "recipients": ["a@a.test"],
        "subject": "Hello",
        "text": "Plain body",
    }
    values.update(changes)
    return Draft(**values)  # type: ignore[arg-type]


def read(content: bytes) -> EmailMessage:
    message = email.message_from_bytes(content.replace(b"\r\n", b"\n"), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def body(part: MIMEPart) -> str:
    content = part.get_content()
    assert isinstance(content, str)
    return content.replace("\r\n", "\n")


def test_text_message_headers_and_line_ends() -> None:
    content = compose(draft(recipients=["a@a.test", "b@b.test"]), "mx.example.test", now=NOW)
    assert b"\n" not in content.replace(b"\r\n", b"")  # CRLF only
    message = read(content)
    assert message["From"] == "shop@example.test"
    assert message["To"] == "a@a.test, b@b.test"
    assert message["Subject"] == "Hello"
    assert message["Date"] == "Mon, 06 May 2024 07:08:09 +0000"
    assert re.fullmatch(r"<[^@>]+@mx\.example\.test>", message["Message-ID"])
    assert message["MIME-Version"] == "1.0"
    assert message.get_content_type() == "text/plain"
    assert body(message) == "Plain body\n"


def test_html_alone_and_with_text() -> None:
    html_only = read(compose(draft(text=None, html="<p>Hi</p>"), "h.test"))
    assert html_only.get_content_type() == "text/html"
    both = read(compose(draft(html="<p>Hi</p>"), "h.test"))
    assert both.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in both.iter_parts()] == ["text/plain", "text/html"]


def test_attachments_wrap_the_body_in_mixed() -> None:
    files = [
        Attachment("report.pdf", "application/pdf", b"%PDF-1.4\x00\xff"),
        Attachment("Übersicht 2024.csv", "text/csv", b"a,b\r\n1,2\r\n"),
    ]
    content = compose(draft(html="<p>Hi</p>", attachments=files), "h.test")
    message = read(content)
    assert message.get_content_type() == "multipart/mixed"
    alternative, *attached = message.iter_parts()
    assert alternative.get_content_type() == "multipart/alternative"
    assert [(a.get_filename(), a.get_content_type()) for a in attached] == [
        ("report.pdf", "application/pdf"),
        ("Übersicht 2024.csv", "text/csv"),
    ]
    assert attached[0].get_content() == b"%PDF-1.4\x00\xff"
    assert content.count(b"MIME-Version:") == 1  # only at the top (RFC 2045 4)


def test_custom_headers_api_data_and_sender_name() -> None:
    message = read(
        compose(
            draft(
                sender_name="Bäckerei",
                headers={"X-Category": "receipt", "Reply-To": "help@example.test"},
                api_data="order-1",
            ),
            "h.test",
        )
    )
    assert message["X-Category"] == "receipt"
    assert message["Reply-To"] == "help@example.test"
    assert message["X-Api-Data"] == "order-1"
    assert message["From"].addresses[0].display_name == "Bäckerei"


def test_addresses_and_display_names_are_written_exactly() -> None:
    content = compose(
        draft(
            sender='"irregular..pattern"@example.test',
            sender_name='Dr. "Who", MD',
            recipients=[f"recipient-number-{i}@example.test" for i in range(6)] + ['"a b"@x.test'],
        ),
        "h.test",
    )
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith('From: "Dr. \\"Who\\", MD" <"irregular..pattern"@example.test>\r\n')
    to = head.split("\r\nTo: ", 1)[1].split("\r\nSubject:", 1)[0]
    assert [a.strip() for a in to.replace("\r\n", "").split(",")][-1] == '"a b"@x.test'
    assert all(len(line) <= 78 for line in head.split("\r\n"))


def test_a_long_non_ascii_name_is_split_into_encoded_words() -> None:
    content = compose(draft(sender_name="Grüße aus München " * 8), "h.test")
    head = content.split(b"\r\n\r\n", 1)[0].decode()
    words = re.findall(r"=\?utf-8\?b\?[^?]*\?=", head.split("\r\nTo:")[0])
    assert len(words) > 1 and all(len(w) <= 75 for w in words)  # RFC 2047 2
    assert "<shop@example.test>" in head


def test_a_given_message_id_replaces_the_generated_one() -> None:
    content = compose(draft(headers={"Message-ID": "<own@example.test>"}), "h.test")
    assert read(content).get_all("Message-ID") == ["<own@example.test>"]


def test_no_subject_no_header() -> None:
    assert "Subject" not in read(compose(draft(subject=""), "h.test"))


def test_non_ascii_is_encoded_and_long_lines_are_wrapped() -> None:
    content = compose(
        draft(subject="Grüße 注文", text="ä" * 3000 + "\n" + "x" * 3000, html="<p>" + "y" * 5000),
        "h.test",
    )
    assert content.isascii()
    assert max(len(line) for line in content.split(b"\r\n")) <= 78


def test_reserved_headers() -> None:
    for name in ("From", "to", "CC", "Bcc", "Subject", "Date", "X-Api-Data", "Content-Type"):
        assert is_reserved_header(name)
    assert is_reserved_header("Content-Language")
    for name in ("Reply-To", "Message-ID", "X-Category", "List-Unsubscribe", "In-Reply-To"):
        assert not is_reserved_header(name)


def test_header_problems() -> None:
    assert header_problem("X-Anything", 'quotes " and <brackets>') is None
    assert header_problem("Reply-To", "Ann <ann@example.test>, bob@example.test") is None
    assert header_problem("Message-ID", "<a@b.test>") is None
    assert header_problem("Reply-To", "not an address") is not None
    assert header_problem("Message-ID", "garbage") is not None
    assert header_problem("Resent-Date", "tomorrow") is not None
    assert header_problem("Resent-To", '"') is not None  # the stdlib raises; we explain


_LINE = st.text(
    st.characters(exclude_categories=["Cc", "Cs"], exclude_characters="\u2028\u2029\x85"),
    max_size=200,
)
_BODY = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r"), max_size=500)


@settings(max_examples=300, deadline=None)
@given(subject=_LINE, name=_LINE, api_data=_LINE, text=_BODY, html=_BODY)
def test_any_text_composes_to_7bit_and_reads_back(
    subject: str, name: str, api_data: str, text: str, html: str
) -> None:
    content = compose(
        draft(subject=subject, sender_name=name, api_data=api_data, text=text, html=html), "h.test"
    )
    assert content.isascii()
    assert max(len(line) for line in content.split(b"\r\n")) <= 998
    message = read(content)
    plain, rich = message.iter_parts()
    assert body(plain).rstrip("\n") == text.rstrip("\n")
    assert body(rich).rstrip("\n") == html.rstrip("\n")
    sender = message["From"].addresses[0]
    assert sender.addr_spec == "shop@example.test"
    # Python's reader puts a space between adjacent encoded-words of a display name, and
    # drops some trailing blanks (RFC 2047 6.2 says to ignore the first): compare the rest.
    assert "".join(sender.display_name.split()) == "".join(name.split())
    if subject.strip():
        assert " ".join(str(message["Subject"]).split()) == " ".join(subject.split())
    if api_data.strip():
        assert " ".join(str(message["X-Api-Data"]).split()) == " ".join(api_data.split())
