"""What a submitted message carries into the contract: Message-ID, filter headers, X-Api-Data."""

from __future__ import annotations

import pytest

from postline.common.policy.filters import REPEATABLE_HEADERS
from postline.ingress.submission import prepare_content


def test_a_missing_message_id_is_added_first() -> None:
    content, headers = prepare_content(b"Subject: hi\r\n\r\nbody\r\n", "relay.test")
    assert content.startswith(b"Message-ID: <")
    first_line = content.split(b"\r\n", 1)[0].decode()
    assert first_line.endswith("@relay.test>")
    assert content.endswith(b"Subject: hi\r\n\r\nbody\r\n")
    assert {h.name: h.value for h in headers}["Message-ID"] == first_line.split(": ", 1)[1]


def test_an_existing_message_id_is_kept_in_any_case() -> None:
    original = b"message-id: <a@b>\r\nSubject: hi\r\n\r\nbody\r\n"
    content, headers = prepare_content(original, "relay.test")
    assert content == original
    assert [h.value for h in headers if h.name.lower() == "message-id"] == ["<a@b>"]


def test_headers_for_filters_but_not_those_that_repeat() -> None:
    _, headers = prepare_content(
        b"Received: a\r\nReceived: b\r\nX-Api-Data: 42\r\nX-Category: campaign\r\n"
        b"X-Twice: 1\r\nX-Twice: 2\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\n\r\nbody\r\n",
        "relay.test",
    )
    names = {h.name: h.value for h in headers}
    assert names["X-Api-Data"] == "42"
    assert names["X-Category"] == "campaign"
    assert "Received" not in names and "X-Twice" not in names
    assert names["Subject"] == "café"  # RFC 2047: what a filter's pattern is written against


@pytest.mark.parametrize("name", [*sorted(REPEATABLE_HEADERS), "ARC-Seal", "Resent-From"])
def test_a_header_that_may_repeat_is_not_carried_even_once(name: str) -> None:
    """The list filters refuse is the list ingress leaves out: one list, in common."""
    _, headers = prepare_content(f"{name}: once\r\nSubject: s\r\n\r\nbody".encode(), "r.test")
    assert [h.name for h in headers if h.name != "Message-ID"] == ["Subject"]


def test_raw_utf8_header_values_are_text() -> None:
    # RFC 6532 allows UTF-8 in header values; an invalid byte becomes U+FFFD, not an error.
    _, headers = prepare_content(
        b"Subject: caf\xc3\xa9\r\nX-Api-Data: a\xffb\r\n\r\nbody", "relay.test"
    )
    names = {h.name: h.value for h in headers}
    assert names["Subject"] == "café"
    assert names["X-Api-Data"] == "a\ufffdb"
    for header in headers:
        header.SerializeToString()  # protobuf strings must be valid UTF-8


def test_a_malformed_encoded_word_stays_as_written() -> None:
    _, headers = prepare_content(b"Subject: =?nope?q?x?=\r\n\r\n", "relay.test")
    assert {h.name: h.value for h in headers}["Subject"] == "=?nope?q?x?="


def test_parsing_stops_at_the_first_line_that_is_not_a_field() -> None:
    _, headers = prepare_content(b"Subject: s\r\nnot a header\r\nX-Late: 1\r\n\r\n", "relay.test")
    assert {h.name for h in headers} == {"Message-ID", "Subject"}
    _, headers = prepare_content(b"\r\nSubject: in the body\r\n", "relay.test")
    assert [h.name for h in headers] == ["Message-ID"]


def test_folded_headers_are_unfolded_values() -> None:
    _, headers = prepare_content(
        b"Subject: a long\r\n subject\r\nX-Category:\tcampaign\r\n\r\nbody\r\n", "relay.test"
    )
    names = {h.name: h.value for h in headers}
    assert names["X-Category"] == "campaign"
    assert names["Subject"] in ("a long subject", "a long\r\n subject")


def test_a_message_without_a_body_separator() -> None:
    content, headers = prepare_content(b"Subject: only headers\r\n", "relay.test")
    assert {h.name for h in headers} == {"Message-ID", "Subject"}
    assert content.endswith(b"Subject: only headers\r\n")
