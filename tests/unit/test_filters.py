"""Filters: {header, pattern} over a message's headers and its envelope recipient."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from pydantic import ValidationError

from postline.common.policy import Filter, first_match, normalize_headers


def make(header: str, pattern: str) -> Filter:
    return Filter.model_validate({"header": header, "pattern": pattern})


def test_header_name_is_case_insensitive() -> None:
    flt = make("X-Category", "^campaign$")
    assert flt.matches({"x-category": "campaign"}, "a@example.test")
    assert flt.matches({"X-CATEGORY": "campaign"}, "a@example.test")
    assert make("x-CATEGORY", "^campaign$").matches({"X-Category": "campaign"}, "a@b.test")


def test_to_means_the_envelope_recipient() -> None:
    flt = make("To", r"@docomo\.ne\.jp$")
    # The To header names someone else: only the envelope recipient counts.
    headers = {"To": "list@example.test"}
    assert flt.matches(headers, "someone@docomo.ne.jp")
    assert not flt.matches({"To": "x@docomo.ne.jp"}, "someone@example.test")
    assert make("to", "^someone@").matches({}, "someone@docomo.ne.jp")


def test_pattern_is_searched_not_fully_matched() -> None:
    assert make("Subject", "confirmation").matches({"Subject": "Order confirmation #12"}, "r")
    assert not make("Subject", "^confirmation").matches({"Subject": "Order confirmation"}, "r")
    assert make("Subject", "^Order").matches({"Subject": "Order confirmation"}, "r")


def test_pattern_is_case_sensitive_unless_asked() -> None:
    assert not make("Subject", "order").matches({"Subject": "Order"}, "r")
    assert make("Subject", "(?i)order").matches({"Subject": "Order"}, "r")


def test_missing_header_never_matches() -> None:
    assert not make("X-Category", "").matches({"Subject": "x"}, "r")
    assert not make("X-Category", "^$").matches({}, "r")


def test_email_message_headers() -> None:
    msg = EmailMessage()
    msg["Subject"] = "Order confirmation"
    msg["X-Category"] = "receipt"
    assert make("x-category", "^receipt$").matches(msg, "r@example.test")
    assert make("subject", "^Order").matches(msg, "r@example.test")


def test_folded_and_encoded_values_are_matched_as_read() -> None:
    headers = {"Subject": "=?UTF-8?B?5rOo5paH56K66KqN?=", "X-Long": "first\r\n second"}
    assert make("Subject", "^注文確認$").matches(headers, "r")
    assert make("X-Long", "^first second$").matches(headers, "r")


def test_first_occurrence_of_a_header_is_used() -> None:
    headers = normalize_headers([("X-Tag", "one"), ("x-tag", "two")])
    assert headers == {"x-tag": "one"}


def test_first_match_returns_the_first_matching_filter_in_order() -> None:
    filters = [make("X-Category", "^a$"), make("X-Category", "."), make("To", ".")]
    assert first_match(filters, {"X-Category": "a"}, "r") is filters[0]
    assert first_match(filters, {"X-Category": "b"}, "r") is filters[1]
    assert first_match(filters, {}, "r") is filters[2]
    assert first_match(filters[:2], {}, "r") is None


@pytest.mark.parametrize(
    "header",
    [
        "Received",
        "received",
        "X-Received",
        "DKIM-Signature",
        "ARC-Seal",
        "arc-message-signature",
        "Authentication-Results",
        "Resent-To",
        "Comments",
        "Keywords",
    ],
)
def test_headers_that_repeat_are_refused(header: str) -> None:
    with pytest.raises(ValidationError, match="can occur several times"):
        make(header, "x")


@pytest.mark.parametrize("header", ["", "X Category", "X-Category:", "Sübject"])
def test_invalid_header_names_are_refused(header: str) -> None:
    with pytest.raises(ValidationError, match="invalid header name"):
        make(header, "x")


def test_bad_regex_is_a_clear_error() -> None:
    with pytest.raises(ValidationError, match=r"invalid regular expression '\(unclosed'"):
        make("Subject", "(unclosed")


def test_filter_rejects_unknown_keys() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        Filter.model_validate({"header": "Subject", "pattern": "x", "flags": "i"})
