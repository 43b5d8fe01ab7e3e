"""The one header scanner (common/headers.py) and what its readers make of it: submitted
mail (ingress), filter values (scheduler), a bounce's quoted original."""

from __future__ import annotations

from postline.bounce.mail.mime import headers_of
from postline.common.headers import first_value, first_values, header_fields, scan
from postline.common.policy.filters import normalize_headers


def test_fields_are_unfolded_in_order_up_to_the_empty_line() -> None:
    content = b"Subject: a\r\n  long one\r\nX-Tag: 1\r\nx-tag: 2\r\n\r\nBody: not a header\r\n"
    assert header_fields(content) == [("Subject", "a  long one"), ("X-Tag", "1"), ("x-tag", "2")]


def test_the_scan_ends_at_a_line_that_is_no_field() -> None:
    assert scan(["A: 1", "not a field", "B: 2"]) == [("A", "1")]
    assert scan(["not a field", "A: 1"]) == []
    assert scan(["Name : obsolete blank"]) == [("Name", "obsolete blank")]


def test_the_first_of_a_repeated_name_wins_in_any_case() -> None:
    fields = [("X-Tag", "one"), ("x-tag", "two")]
    assert first_values(fields) == {"x-tag": "one"}
    assert first_value(fields, "X-TAG") == "one"
    assert first_value(fields, "Subject") is None


def test_a_broken_encoded_word_in_a_filter_value_is_matched_as_written() -> None:
    # Base64 of a wrong length: the standard library raises HeaderParseError (a filter raised
    # it too, and the scheduler requeued the delivery for ever).
    assert normalize_headers([("Subject", "=?utf-8?b?a?=")]) == {"subject": "=?utf-8?b?a?="}
    assert normalize_headers([("Subject", "=?utf-8?q?caf=C3=A9?=\r\n tail")]) == {
        "subject": "café tail"
    }


def test_a_quoted_original_may_start_after_other_lines_and_end_at_blanks() -> None:
    text = (
        "\r\n-- original headers --\r\nMessage-ID: <m@x>\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n"
        "  continued\r\nSubject: second\r\n   \r\nTo: body@x\r\n"
    )
    assert headers_of(text) == {"message-id": "<m@x>", "subject": "café continued"}
