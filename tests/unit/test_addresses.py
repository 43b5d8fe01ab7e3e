"""The address rules of DESIGN.md "Addresses", example by example, plus properties."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from postline.common.addresses import (
    MAX_ADDRESS_LENGTH,
    Address,
    AddressError,
    address_key,
    is_valid_address,
    parse_address,
    parse_path,
    recipient_domain,
    split_path,
)

SPECIALS = "!#$%&'*+-/=?^\\_`{|}~"


def reason_of(text: str) -> str:
    with pytest.raises(AddressError) as caught:
        parse_address(text)
    return caught.value.reason


# --- local part, unquoted ---------------------------------------------------------------------


def test_plain_address() -> None:
    address = parse_address("user@example.test")
    assert (address.local, address.domain) == ("user", "example.test")
    assert not address.needs_quoting
    assert address.smtp_form() == "user@example.test"
    assert str(address) == "user@example.test"


@pytest.mark.parametrize("char", list(SPECIALS))
def test_each_special_character_is_allowed_unquoted(char: str) -> None:
    for local in (f"a{char}b", f"{char}", f"{char}a", f"a{char}"):
        assert parse_address(f"{local}@example.test").local == local


@pytest.mark.parametrize("char", list(SPECIALS.replace("\\", "")))
def test_rfc_atext_specials_are_sent_unquoted(char: str) -> None:
    assert parse_address(f"a{char}b@example.test").smtp_form() == f"a{char}b@example.test"


def test_backslash_is_a_literal_character_unquoted_and_quoted_when_sent() -> None:
    # Not in RFC 5322 atext, so the wire form quotes it (RFC 5321 §4.1.2).
    address = parse_address("a\\b@example.test")
    assert address.local == "a\\b"
    assert address.needs_quoting
    assert address.smtp_form() == '"a\\\\b"@example.test'
    assert parse_address(address.smtp_form()) == address


def test_alphanumerics_and_inner_dots() -> None:
    address = parse_address("First.Last.42@example.test")
    assert address.local == "First.Last.42"
    assert not address.needs_quoting


def test_dot_not_first() -> None:
    assert reason_of(".user@example.test") == "local part must not start with '.'"
    assert reason_of(".@example.test") == "local part must not start with '.'"


@pytest.mark.parametrize("local", ["irregular..pattern", "a..b", "trailing.", "a...b.", "x.."])
def test_irregular_dots_are_accepted_and_quoted_when_sent(local: str) -> None:
    address = parse_address(f"{local}@example.test")
    assert address.local == local
    assert address.needs_quoting
    assert address.smtp_form() == f'"{local}"@example.test'


def test_design_example_irregular_pattern() -> None:
    address = parse_address("irregular..pattern@example.test")
    assert str(address) == '"irregular..pattern"@example.test'
    assert address == parse_address('"irregular..pattern"@example.test')


@pytest.mark.parametrize("char", list(' ()<>[]:;@,"'))
def test_other_ascii_specials_need_quotes(char: str) -> None:
    if char == "@":
        expected = "more than one '@'"
    elif char in "<>":
        expected = "angle brackets are not part of the address"
    elif char == " ":
        expected = "U+0020 outside quotes"
    else:
        expected = f"'{char}', which is only allowed inside quotes"
    assert expected in reason_of(f"a{char}b@example.test")
    escaped = "\\" + char if char == '"' else char
    assert parse_address(f'"a{escaped}b"@example.test').local == f"a{char}b"


@pytest.mark.parametrize("char", ["\t", "\r", "\n", "\x00", "\x1b", "\x7f", " "])
def test_whitespace_and_control_characters_outside_quotes(char: str) -> None:
    reason = reason_of(f"us{char}er@example.test")
    assert f"U+{ord(char):04X}" in reason
    assert "outside quotes" in reason


def test_surrounding_whitespace_is_not_stripped() -> None:
    assert not is_valid_address(" user@example.test")
    assert not is_valid_address("user@example.test ")
    assert not is_valid_address("user@example.test\n")


def test_empty_local_part() -> None:
    assert reason_of("@example.test") == "local part is empty"
    assert reason_of('""@example.test') == "local part is empty"


def test_missing_at() -> None:
    assert reason_of("user.example.test") == "address has no '@'"
    assert reason_of('"user"') == "address has no '@'"
    assert reason_of("") == "address is empty"


def test_more_than_one_at() -> None:
    assert "more than one '@'" in reason_of("a@b@example.test")
    assert parse_address('"a@b"@example.test').local == "a@b"


def test_angle_brackets_belong_to_the_caller() -> None:
    assert reason_of("<user@example.test>") == "angle brackets are not part of the address"


# --- local part, quoted -----------------------------------------------------------------------


def test_quoted_local_part() -> None:
    address = parse_address('"john smith (work)"@example.test')
    assert address.local == "john smith (work)"
    assert address.smtp_form() == '"john smith (work)"@example.test'


def test_quoted_escapes_are_undone_and_redone() -> None:
    address = parse_address('"a\\"b\\\\c"@example.test')
    assert address.local == 'a"b\\c'
    assert address.smtp_form() == '"a\\"b\\\\c"@example.test'


def test_needless_quotes_and_escapes_are_dropped_on_the_wire() -> None:
    address = parse_address('"\\u\\ser"@example.test')
    assert address.local == "user"
    assert not address.needs_quoting
    assert address.smtp_form() == "user@example.test"


def test_quoted_local_may_start_with_a_dot_and_hold_at() -> None:
    assert parse_address('".a@b"@example.test').local == ".a@b"


def test_unterminated_quote() -> None:
    assert reason_of('"user@example.test') == "quoted local part has no closing '\"'"
    assert reason_of('"user\\"@example.test') == "quoted local part has no closing '\"'"
    assert reason_of('"user\\') == "quoted local part has no closing '\"'"


def test_quoted_string_must_be_the_whole_local_part() -> None:
    for text in ('"a".b@example.test', '"a"b@example.test', '"a""b"@example.test'):
        assert "whole local part" in reason_of(text)
    assert not is_valid_address('a."b"@example.test')


@pytest.mark.parametrize("char", ["\t", "\r", "\n", "\x00", "\x7f"])
def test_control_characters_are_rejected_even_inside_quotes(char: str) -> None:
    assert "even inside quotes" in reason_of(f'"a{char}b"@example.test')
    assert "even inside quotes" in reason_of(f'"a\\{char}b"@example.test')


# --- non-ASCII --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text", ["jürgen@example.test", '"jürgen"@example.test', "user@bücher.test", "用户@例子.test"]
)
def test_non_ascii_is_rejected_with_a_reason_saying_so(text: str) -> None:
    reason = reason_of(text)
    assert "non-ASCII" in reason
    assert reason.isascii()


# --- domain -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain", ["example.test", "a_b.example.test", "x-1.test", "localhost", "1.2.3.4", "a-_.b"]
)
def test_domains_accepted(domain: str) -> None:
    assert parse_address(f"user@{domain}").domain == domain


@pytest.mark.parametrize(
    ("domain", "reason"),
    [
        ("", "domain is empty"),
        (".example.test", "domain must not start with '.'"),
        ("example.test.", "domain must not end with '.'"),
        ("example..test", "domain must not contain '..'"),
        ("-example.test", "each domain label must start with a letter or digit"),
        ("_example.test", "each domain label must start with a letter or digit"),
        ("mail.-x.test", "each domain label must start with a letter or digit"),
        ("mail._x.test", "each domain label must start with a letter or digit"),
        ("exa mple.test", "domain contains U+0020"),
        ("exa+mple.test", "domain contains '+'"),
        ("[192.0.2.1]", "address literals are not accepted as a domain"),
    ],
)
def test_domains_rejected(domain: str, reason: str) -> None:
    assert reason_of(f"user@{domain}") == reason


def test_domain_is_kept_as_given_and_lowered_on_request() -> None:
    address = parse_address("User@Example.TEST")
    assert address.domain == "Example.TEST"
    assert address.domain_lower == "example.test"
    assert recipient_domain("User@Example.TEST") == "example.test"


def test_recipient_domain_of_an_invalid_address_raises() -> None:
    with pytest.raises(AddressError):
        recipient_domain("nobody")


# --- comparison -------------------------------------------------------------------------------


def test_comparison_is_case_insensitive() -> None:
    a = parse_address("John.Smith@Example.TEST")
    b = parse_address("john.smith@example.test")
    assert a == b
    assert hash(a) == hash(b)
    assert len({a, b}) == 1
    assert a.key == b.key == "john.smith@example.test"
    assert (a.local, a.domain) == ("John.Smith", "Example.TEST")


def test_quoted_and_unquoted_spellings_are_equal() -> None:
    quoted = parse_address('"Irregular..Pattern"@x.test')
    assert quoted == parse_address("irregular..pattern@x.test")
    assert parse_address('"user"@x.test') == parse_address("USER@x.test")


def test_different_addresses_differ() -> None:
    assert parse_address("a@x.test") != parse_address("b@x.test")
    assert parse_address("a@x.test") != parse_address("a@y.test")
    assert parse_address("a@x.test") != "a@x.test"


def test_key_is_parseable() -> None:
    address = parse_address('"A B"@X.test')
    assert address.key == '"a b"@x.test'
    assert parse_address(address.key) == address


# --- length -----------------------------------------------------------------------------------


def test_long_address_is_accepted() -> None:
    # No local-part (64), domain (255) or label (63) limit: only the SMTP line.
    local = "l" * 400
    domain = ".".join(["d" * 99] * 5)
    text = f"{local}@{domain}"
    assert len(text) == 900
    assert parse_address(text).smtp_form() == text


def test_the_only_limit_is_the_smtp_line() -> None:
    domain = "example.test"
    fits = "u" * (MAX_ADDRESS_LENGTH - len(domain) - 1) + "@" + domain
    assert len(f"MAIL FROM:<{fits}>\r\n") == 1000
    assert is_valid_address(fits)
    assert "longer than" in reason_of("u" + fits)


def test_the_limit_applies_to_the_quoted_wire_form() -> None:
    domain = "example.test"
    local = "a.." + "u" * (MAX_ADDRESS_LENGTH - len(domain) - 1 - 3 - 2)
    assert len(parse_address(f"{local}@{domain}").smtp_form()) == MAX_ADDRESS_LENGTH
    assert "longer than" in reason_of(f"u{local}@{domain}")


def test_huge_input_is_rejected_early() -> None:
    assert "longer than" in reason_of("u" * 1_000_000 + "@example.test")


# --- direct construction ----------------------------------------------------------------------


def test_constructing_an_address_validates_it() -> None:
    assert Address("a b", "example.test").smtp_form() == '"a b"@example.test'
    for local, domain in [("", "x.test"), ("a\nb", "x.test"), ("ü", "x.test"), ("a", "-x")]:
        with pytest.raises(AddressError):
            Address(local, domain)


def test_address_is_frozen() -> None:
    address = parse_address("a@x.test")
    with pytest.raises(dataclasses.FrozenInstanceError):
        address.local = "b"  # type: ignore[misc]


def test_address_error_is_a_value_error_with_a_reason() -> None:
    with pytest.raises(ValueError, match="has no '@'"):
        parse_address("nobody")


# --- SMTP paths -------------------------------------------------------------------------------


def test_parse_path() -> None:
    assert parse_path("<user@example.test>") == parse_address("user@example.test")
    assert parse_path('<"a b"@example.test>') == Address("a b", "example.test")
    assert parse_path('<"a>b"@example.test>') == Address("a>b", "example.test")
    assert parse_path("<irregular..pattern@example.test>") == Address(
        "irregular..pattern", "example.test"
    )


def test_parse_path_tolerates_spaces_around_the_brackets() -> None:
    assert parse_path(" <user@example.test> ") == parse_address("user@example.test")


@pytest.mark.parametrize("text", ["user@example.test", "<user@example.test", "user@example.test>"])
def test_parse_path_requires_angle_brackets(text: str) -> None:
    with pytest.raises(AddressError, match="angle brackets"):
        parse_path(text)


def test_null_path_only_when_allowed() -> None:
    assert parse_path("<>", allow_null=True) is None
    with pytest.raises(AddressError, match="null path"):
        parse_path("<>")


def test_source_route_is_dropped() -> None:
    assert parse_path("<@a.test,@b.test:user@d.test>") == parse_address("user@d.test")
    assert parse_path("<@a.test:user@d.test>") == parse_address("user@d.test")


@pytest.mark.parametrize("text", ["<@a.test user@d.test>", "<@:user@d.test>", "<@a.test;@b:u@d>"])
def test_malformed_source_route(text: str) -> None:
    with pytest.raises(AddressError, match="source route"):
        parse_path(text)


def test_parse_path_rejects_bad_mailboxes() -> None:
    for text in ("<Postmaster>", "<< a@b>>", "<a@b> SIZE=1", "< a@b.test>", "<.a@b.test>"):
        with pytest.raises(AddressError):
            parse_path(text)


def test_split_path() -> None:
    assert split_path("<a@b.test>") == ("<a@b.test>", "")
    assert split_path('<"a> b"@x.test> SIZE=10 BODY=8BITMIME') == (
        '<"a> b"@x.test>',
        "SIZE=10 BODY=8BITMIME",
    )
    assert split_path(' <"a\\"> b"@x.test>') == ('<"a\\"> b"@x.test>', "")
    assert split_path("<>  SIZE=1") == ("<>", "SIZE=1")


@pytest.mark.parametrize(
    ("argument", "reason"),
    [
        ("a@b.test", "angle brackets"),
        ("<a@b.test", "no closing '>'"),
        ('<"a>@b.test', "no closing '>'"),
        ("<a@b.test>SIZE=1", "after the closing '>'"),
    ],
)
def test_split_path_errors(argument: str, reason: str) -> None:
    with pytest.raises(AddressError, match=reason):
        split_path(argument)


# --- properties -------------------------------------------------------------------------------

ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PRINTABLE_ASCII = "".join(chr(c) for c in range(0x20, 0x7F))

labels = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(ALNUM),
    st.text(alphabet=ALNUM + "-_", max_size=12),
)
domains = st.lists(labels, min_size=1, max_size=4).map(".".join)
any_locals = st.text(alphabet=PRINTABLE_ASCII, min_size=1, max_size=40)
unquoted_locals = st.builds(
    lambda first, rest: first + rest,
    st.sampled_from(ALNUM + SPECIALS),
    st.text(alphabet=ALNUM + SPECIALS + ".", max_size=30),
)
addresses = st.builds(Address, any_locals, domains)


@given(addresses)
def test_smtp_form_round_trips(address: Address) -> None:
    parsed = parse_address(address.smtp_form())
    assert parsed == address
    assert (parsed.local, parsed.domain) == (address.local, address.domain)
    assert parse_path(f"<{address.smtp_form()}>") == address


@given(addresses)
def test_smtp_form_is_ascii_without_line_breaks(address: Address) -> None:
    wire = address.smtp_form()
    assert wire.isascii()
    assert "\r" not in wire and "\n" not in wire
    assert address.needs_quoting == wire.startswith('"')


@given(unquoted_locals, domains)
def test_unquoted_input_is_accepted_and_round_trips(local: str, domain: str) -> None:
    address = parse_address(f"{local}@{domain}")
    assert address.local == local
    assert parse_address(address.smtp_form()) == address


@given(addresses)
def test_case_changes_keep_addresses_equal(address: Address) -> None:
    other = parse_address(address.smtp_form().swapcase())
    assert other == address
    assert hash(other) == hash(address)
    assert parse_address(address.key) == address


def assert_good_reason(error: AddressError) -> None:
    # The reason goes into an SMTP reply line as is.
    assert error.reason
    assert error.reason.isascii() and error.reason.isprintable()
    assert len(error.reason) <= 120


@given(st.text())
def test_arbitrary_text_parses_or_raises_address_error(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError as error:
        assert_good_reason(error)
        assert not is_valid_address(text)
        return
    assert address.smtp_form().isascii()
    assert "\r" not in address.smtp_form() and "\n" not in address.smtp_form()
    assert is_valid_address(text)


@given(st.text(alphabet=st.characters(codec="ascii")))
def test_arbitrary_ascii_parses_or_raises_address_error(text: str) -> None:
    try:
        address = parse_address(text)
    except AddressError as error:
        assert_good_reason(error)
        return
    assert "\r" not in address.smtp_form() and "\n" not in address.smtp_form()


@given(st.text(alphabet=st.sampled_from(ALNUM[:3] + '."\\@<>:,- \t'), max_size=30))
def test_arbitrary_address_like_text_parses_or_raises_address_error(text: str) -> None:
    for candidate in (text, f"<{text}>"):
        try:
            parse_address(candidate)
        except AddressError as error:
            assert_good_reason(error)
        try:
            parse_path(candidate, allow_null=True)
        except AddressError as error:
            assert_good_reason(error)
        try:
            split_path(candidate)
        except AddressError as error:
            assert_good_reason(error)


@given(st.text())
def test_arbitrary_paths_parse_or_raise_address_error(text: str) -> None:
    for candidate in (text, f"<{text}>"):
        try:
            parse_path(candidate, allow_null=True)
        except AddressError as error:
            assert_good_reason(error)


# --- the key of an address given as text (suppressions) -------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("Someone@Example.JP", "someone@example.jp"),
        (" <Someone@Example.JP> ", "someone@example.jp"),
        ("irregular..Pattern@example.jp", '"irregular..pattern"@example.jp'),
        ('"irregular..pattern"@EXAMPLE.jp', '"irregular..pattern"@example.jp'),
        ('"plain"@example.jp', "plain@example.jp"),  # quotes that were not needed
        ("Not An Address", "not an address"),  # still a key, only lowercased
    ],
)
def test_address_key(text: str, key: str) -> None:
    assert address_key(text) == key
