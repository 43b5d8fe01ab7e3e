"""VERP return paths: what the sender encodes, the bounce service decodes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postline.common.addresses import parse_address
from postline.common.ids import new_id
from postline.common.verp import VerpError, decode_verp, encode_verp


def test_encodes_the_delivery_id_in_a_plain_local_part() -> None:
    address = encode_verp("0192ab34cd56ef7890aabbccddeeff00", "Bounce.Example.test")
    assert address == "bounce-0192ab34cd56ef7890aabbccddeeff00@bounce.example.test"
    assert not parse_address(address).needs_quoting


def test_round_trips_a_real_delivery_id() -> None:
    delivery_id = new_id()
    assert decode_verp(encode_verp(delivery_id, "bounce.example.test")) == delivery_id


@given(st.from_regex(r"[0-9a-z_-]{1,64}", fullmatch=True))
def test_round_trips_any_encodable_id(delivery_id: str) -> None:
    assert decode_verp(encode_verp(delivery_id, "b.example.test")) == delivery_id


@pytest.mark.parametrize(
    "address",
    [
        "BOUNCE-0192AB34CD56EF7890AABBCCDDEEFF00@BOUNCE.EXAMPLE.TEST",  # an MTA upper-cased it
        "<bounce-0192ab34cd56ef7890aabbccddeeff00@bounce.example.test>",  # an SMTP path
        '"bounce-0192ab34cd56ef7890aabbccddeeff00"@bounce.example.test',  # quoted for no reason
        "  bounce-0192ab34cd56ef7890aabbccddeeff00@bounce.example.test ",
    ],
)
def test_decodes_the_forms_a_bounce_may_come_back_in(address: str) -> None:
    assert decode_verp(address) == "0192ab34cd56ef7890aabbccddeeff00"


@pytest.mark.parametrize(
    "address",
    [
        "postmaster@bounce.example.test",
        "bounce-@bounce.example.test",
        "bounce-a.b@bounce.example.test",
        "bounce-abc",
        "",
        "<>",
        "not an address",
        f"bounce-{'a' * 65}@bounce.example.test",
    ],
)
def test_anything_else_is_not_a_verp_address(address: str) -> None:
    assert decode_verp(address) is None


@pytest.mark.parametrize("delivery_id", ["", "ABC", "a.b", "a+b", "a b", "x" * 65])
def test_refuses_ids_that_would_not_come_back_intact(delivery_id: str) -> None:
    with pytest.raises(VerpError):
        encode_verp(delivery_id, "bounce.example.test")


def test_refuses_a_bad_domain() -> None:
    with pytest.raises(VerpError):
        encode_verp("abc", "bounce..example")
