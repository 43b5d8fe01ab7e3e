"""RFC 3461 parameters: xtext, NOTIFY, ORCPT, RET, ENVID (postline.common.dsn)."""

from __future__ import annotations

import pytest

from postline.common.dsn import (
    DsnError,
    dsn_request,
    parse_envid,
    parse_notify,
    parse_orcpt,
    parse_ret,
    xtext_decode,
    xtext_encode,
)
from postline.v1 import delivery_pb2


def test_xtext_decodes_hexchars_and_round_trips() -> None:
    assert xtext_decode("a+2Bb+3Dc") == "a+b=c"
    assert xtext_decode("plain@x.test") == "plain@x.test"
    for value in ("a+b=c", "with space", "tab\there", "~!#$%&'*"):
        assert xtext_decode(xtext_encode(value)) == value
    assert xtext_encode("a b+c=") == "a+20b+2Bc+3D"


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("a+2", "'+' at 2 must be followed by two hex digits"),
        ("a+2b", "'+' at 2 must be followed by two hex digits"),  # lower-case hex is not xtext
        ("a=b", "character '=' at 2 must be written as +XX"),
        ("a b", "character ' ' at 2 must be written as +XX"),
    ],
)
def test_bad_xtext_is_refused_with_the_place(text: str, says: str) -> None:
    with pytest.raises(DsnError) as caught:
        xtext_decode(text, "ENVID")
    assert caught.value.name == "ENVID"
    assert says in caught.value.reason


def test_notify_values() -> None:
    assert parse_notify(["NEVER"]) == (True, False, False, False)
    assert parse_notify(["success", "Delay"]) == (False, True, False, True)
    assert parse_notify(["FAILURE"]) == (False, False, True, False)
    for bad, says in [
        (["NEVER", "SUCCESS"], "NEVER cannot be combined"),
        (["SOMETIMES"], "unknown value"),
        ([], "expected NEVER"),
        ([""], "expected NEVER"),
        (["DELAY", "DELAY"], "repeated"),
    ]:
        with pytest.raises(DsnError, match=says):
            parse_notify(bad)


def test_orcpt_smtp_and_api_forms() -> None:
    assert parse_orcpt("rfc822;a+2Bb@x.test") == "rfc822;a+b@x.test"
    assert parse_orcpt("RFC822;a@x.test") == "rfc822;a@x.test"
    assert parse_orcpt("x-local;joe") == "x-local;joe"
    assert parse_orcpt("a@x.test", xtext=False) == "rfc822;a@x.test"  # the API's bare address
    for bad, says in [
        ("a@x.test", "expected addr-type;address"),
        ("rfc 822;a@x.test", "must be an atom"),
        ("rfc822;", "printable US-ASCII"),
        ("rfc822;" + "a" * 500, "longer than 500"),
    ]:
        with pytest.raises(DsnError, match=says):
            parse_orcpt(bad)


def test_ret_and_envid() -> None:
    assert parse_ret("full") == delivery_pb2.DSN_RETURN_FULL
    assert parse_ret("HDRS") == delivery_pb2.DSN_RETURN_HEADERS
    with pytest.raises(DsnError, match="expected FULL or HDRS"):
        parse_ret("BODY")
    assert parse_envid("QQ+2B1") == "QQ+1"
    assert parse_envid("order 42", xtext=False) == "order 42"
    with pytest.raises(DsnError, match="longer than 100"):
        parse_envid("x" * 101)
    with pytest.raises(DsnError, match="printable"):
        parse_envid("caf\u00e9", xtext=False)


def test_a_request_only_when_something_was_asked() -> None:
    assert dsn_request() is None
    request = dsn_request(notify=(False, True, True, False), orcpt="rfc822;a@x.test")
    assert request is not None
    assert request.notify_given and request.notify_success and request.notify_failure
    assert not request.notify_delay and not request.notify_never
    assert request.original_recipient == "rfc822;a@x.test"
    only_ret = dsn_request(ret=delivery_pb2.DSN_RETURN_FULL)
    assert only_ret is not None and not only_ret.notify_given
