"""DNS failures of the recipient's domain in each MTA's own words (issue #16, round 41), as
Postfix, Exim and Sendmail wrote them on loopback through the harness's own DNS server
(``bench/bounce_accuracy/mtas/dnsserver.py``; domains and dates changed), and that server's
answers; each test names the behaviour it holds.
"""

from __future__ import annotations

import struct

import pytest

from bench.bounce_accuracy.mtas.cases import DNS_CASES, load
from bench.bounce_accuracy.mtas.dnsserver import NOERROR, NXDOMAIN, SERVFAIL, Name, Table
from postline.bounce.classify import classify_failure
from tests.mta_cases_support import assert_committed_set

TABLE = Table(
    {
        "nullmx.example": Name((("MX", "0 ."),)),
        "badmx.example": Name((("MX", "10 mx1.badmx.example"),)),
        "nodata.example": Name(),
        "servfail.example": Name(rcode=SERVFAIL),
        "silent.example": Name(silent=True),
        "loop.example": Name((("CNAME", "mx.loop.example"),)),
        "mx.loop.example": Name((("CNAME", "loop.example"),)),
        "host.example": Name((("A", "192.0.2.7"),)),
    }
)
MX, A = 15, 1


def _query(name: str, qtype: int) -> bytes:
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    return (
        struct.pack("!HHHHHH", 4242, 0x0100, 1, 0, 0, 0)
        + labels
        + b"\0"
        + struct.pack("!HH", qtype, 1)
    )


def _answer(name: str, qtype: int) -> tuple[int, int, int]:
    """(id, rcode, answer count) of the table's reply."""
    reply = TABLE.answer(_query(name, qtype))
    assert reply is not None
    ident, flags, _, answers, _, _ = struct.unpack("!HHHHHH", reply[:12])
    return ident, flags & 0x0F, answers


def test_the_dns_server_answers_each_case_as_its_table_says() -> None:
    assert _answer("nullmx.example", MX) == (4242, NOERROR, 1)
    assert _answer("nodata.example", MX) == (4242, NOERROR, 0)  # the name, no record
    assert _answer("nodata.example", A) == (4242, NOERROR, 0)
    assert _answer("mx1.badmx.example", A) == (4242, NXDOMAIN, 0)  # not in the table
    assert _answer("servfail.example", MX) == (4242, SERVFAIL, 0)
    assert _answer("host.example", A) == (4242, NOERROR, 1)
    assert TABLE.answer(_query("silent.example", MX)) is None  # never answered


def test_a_cname_loop_is_answered_with_its_chain_once_round() -> None:
    reply = TABLE.answer(_query("loop.example", MX))
    assert reply is not None
    assert struct.unpack("!H", reply[6:8])[0] == 2  # loop -> mx.loop -> (loop again: stop)


def test_a_null_mx_record_names_the_root() -> None:
    reply = TABLE.answer(_query("nullmx.example", MX))
    assert reply is not None
    assert reply.endswith(struct.pack("!HH", 3, 0) + b"\0")  # rdlength 3: preference 0, "."


def test_the_dns_cases_are_a_set_of_their_own() -> None:
    mtas = (
        "dns_postfix", "dns_exim", "dns_sendmail", "dns_opensmtpd", "dns_courier", "dns_haraka",
        "dns_dma",
    )  # fmt: skip
    assert_committed_set(
        DNS_CASES,
        mtas,
        cases=(6, 6, 6, 6, 6, 6, 3),
        rows=(8, 9, 8, 12, 8, 6, 3),
        senders=39,
    )
    for mta in mtas:
        cases = {case.name for case in load(mta, DNS_CASES)}
        # dma retries the null MX and the missing MX host for days: no notice, no case (round 44)
        made = {"no-address-records"} if mta == "dns_dma" else {"null-mx", "mx-host-not-found"}
        assert made | {"no-address-records", "cname-loop"} <= cases


# Permanent DNS failures the MTAs named, each read as an unknown host (1).
PERMANENT = [
    ("5.4.4", "x-postfix", "Host or domain name not found. Name service error for "
     "name=mx1.example.net type=A: Host not found"),  # an MX host that does not exist
    ("5.4.4", "x-postfix", "Host or domain name not found. Name service error for "
     "name=example.net type=A: Host found but no data record of requested type"),  # NODATA
    ("5.4.4", "x-postfix", "Name server loop for example.net"),  # a CNAME loop
    ("5.0.0", "", "all relevant MX records point to non-existent hosts"),  # Exim
    ("5.0.0", "", "Unrouteable address"),  # Exim, a domain with no MX and no address
]  # fmt: skip


@pytest.mark.parametrize(("status", "kind", "text"), PERMANENT)
def test_a_permanent_dns_failure_of_the_domain_is_an_unknown_host(
    status: str, kind: str, text: str
) -> None:
    found = classify_failure(0, status, text, diagnostic_type=kind, action="failed")
    assert found.status == 1


def test_exims_give_up_after_a_lookup_that_never_completed_names_no_reason() -> None:
    # SERVFAIL, no answer, or a CNAME loop, retried by Exim until its retry rule gave up: the
    # notice says only this (3), not a DNS failure.
    found = classify_failure(0, "5.0.0", "retry timeout exceeded", action="failed")
    assert found.status == 3
