"""DNS failures of the recipient's domain in OpenSMTPD's, Courier's, Haraka's and dma's own
words (issue #16, round 44), as they wrote them on loopback through the harness's own DNS
server (``bench/bounce_accuracy/mtas/dnsserver.py``; domains changed), the case file's new
sections, and the table those four modules share; each test names the behaviour it holds.
"""

from __future__ import annotations

import struct

import pytest

from bench.bounce_accuracy.mtas.cases import DNS_CASES, load, splits
from bench.bounce_accuracy.mtas.dns_opensmtpd import TABLE
from bench.bounce_accuracy.mtas.dnsserver import NOERROR, NXDOMAIN, SERVFAIL
from postline.bounce.classify import classify_failure

ROUND_44 = ("dns_opensmtpd", "dns_courier", "dns_haraka", "dns_dma")
MX = 15


def _rcode(name: str) -> tuple[int, int] | None:
    """(rcode, answer count) of the round's table for an MX query of ``name``; None if it
    does not answer."""
    labels = b"".join(bytes([len(p)]) + p.encode() for p in name.split("."))
    query = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + labels + b"\0"
    reply = TABLE.answer(query + struct.pack("!HH", MX, 1))
    if reply is None:
        return None
    _, flags, _, answers, _, _ = struct.unpack("!HHHHHH", reply[:12])
    return flags & 0x0F, answers


def test_the_rounds_table_makes_each_kind_of_failure() -> None:
    assert _rcode("gorse.test") == (NOERROR, 1)  # the null MX
    assert _rcode("betony.test") == (NOERROR, 0)  # NODATA
    assert _rcode("mx1.sedum.test") == (NXDOMAIN, 0)  # the MX's host
    assert _rcode("sloe.test") == (NXDOMAIN, 0)  # dma's unknown domain
    assert _rcode("comfrey.test") == (SERVFAIL, 0)
    assert _rcode("woad.test") is None  # never answered
    assert _rcode("madder.test") == (NOERROR, 2)  # the CNAME loop, answered once round
    assert "sender.test" not in TABLE.names  # the notices' way is routed by hand (dma: its own)


def test_the_four_mtas_have_sections_of_their_own_with_a_note_on_every_row() -> None:
    found = splits(DNS_CASES)
    assert set(ROUND_44) <= set(found)
    for mta in ROUND_44:
        cases = load(mta, DNS_CASES)
        assert {"no-address-records", "cname-loop"} <= {case.name for case in cases}
        for case in cases:
            for label in (*case.failed.values(), *case.delayed.values()):
                assert label.note and label.status in (1, 3, 7)
    # dma made notices only for what it failed at once; the NXDOMAIN no earlier round made
    assert {case.name for case in load("dns_dma", DNS_CASES)} == {
        "no-address-records",
        "cname-loop",
        "unknown-domain",
    }


def test_opensmtpds_expiry_after_a_dns_failure_names_no_reason() -> None:
    # OpenSMTPD retried every kind until its queue lifetime: "Envelope expired" under its
    # delay template's 4.4.7, labelled 3, read 3.
    found = classify_failure(0, "4.4.7", "Envelope expired", action="failed")
    assert found.status == 3


def test_courier_s_word_for_a_domain_whose_dns_breaks_rfc_1035_is_an_unknown_host() -> None:
    # A CNAME loop, returned at once under 5.0.0 (read 99 before round 44's rule).
    found = classify_failure(
        0, "5.0.0", "This domain's DNS violates RFC 1035.", diagnostic_type="unknown",
        action="failed",
    )  # fmt: skip
    assert (found.status, found.reason) == (1, "host-unknown")


def test_the_words_of_rfc_1035_do_not_count_in_a_delay() -> None:
    found = classify_failure(0, "4.0.0", "This domain's DNS violates RFC 1035.", action="delayed")
    assert found.status != 1


@pytest.mark.parametrize("error", ["ESERVFAIL", "ETIMEOUT"])
def test_harakas_dns_give_up_under_5_1_0_is_no_unknown_user(error: str) -> None:
    # Haraka's words after its retries of a failing DNS: read 2 by the 5.1.0 code before
    # round 44 (a 2 suppresses a live address); network-error's words veto the code now (7,
    # the shared corpus's reading; whether 1 is round 41's open decision).
    text = f"Error: Too many failures (DNS lookup failure: Error: queryMx {error} example.org)"
    found = classify_failure(0, "5.1.0", text, action="failed")
    assert found.status == 7


def test_a_5_1_0_that_names_the_mailbox_is_still_an_unknown_user() -> None:
    for text in ("550 5.1.0 <u@example.org>... User unknown", "5.1.0 Address rejected"):
        assert classify_failure(550, "5.1.0", text, action="failed").status == 2


# Permanent DNS failures in these MTAs' words that were read right when measured once.
HELD = [
    ("5.0.0", "unknown", "No such domain."),  # Courier: null MX, MX host missing, NODATA
    ("5.1.2", "", "Nowhere to deliver mail to for domain: example.org"),  # Haraka: NODATA, loop
    ("", "", "DNS lookup failure: host example.org not found"),  # dma: NODATA, loop, NXDOMAIN
]


@pytest.mark.parametrize(("status", "kind", "text"), HELD)
def test_their_permanent_dns_words_are_an_unknown_host(status: str, kind: str, text: str) -> None:
    found = classify_failure(0, status, text, diagnostic_type=kind, action="failed")
    assert found.status == 1
