"""A review of permanent DNS-failure wordings (issue #16, round 48): the words in which MTAs
and providers say, in a permanent failure, that the recipient's domain has no host to
deliver to read 1 (unknown host, DESIGN's table), whatever the code they come under; the
kinds the shared corpus labels 7 stay 7 (a null MX, a temporary DNS failure named in a final
notice, OpenSMTPD's "No MX found for domain", qmail's "couldn't find a mail exchanger or IP
address", a destination whose DNS points back to the sender); the same words said of our
sender or our HELO name are the sender refused (4); in a temporary failure they stay
temporary. Each wording is tried as a remote reply (550, no enhanced code), as an MTA's own
words under 5.0.0 and with no code at all, each in a final failure (Action: failed).
"""

from __future__ import annotations

import pytest

from postline.bounce.classify import classify_failure

# (words, where they come from): each read 1 in a permanent failure
UNKNOWN_HOST = [
    ("Nowhere to deliver mail to for domain: example.org", "Haraka outbound"),
    ("No MX for example.org", "Haraka outbound"),
    ("Unable to find any MX or A record for example.org", "Go and Node MTAs"),
    ("unable to find any MX or A record", "issue #16"),
    ("no mail exchanger", "issue #16"),
    ("Domain example.org has no valid mail exchangers", "issue #16"),
    ("domain has no valid mail exchangers", "issue #16"),
    ("The mail system could not find the MX record", "issue #16"),
    ("Unable to resolve the domain", "issue #16"),
    ("Could not resolve host", "curl-style MTAs"),
    ("DNS lookup failed", "Courier, Go and Node MTAs"),
    ("DNS MX lookup failed.", "Courier's submit"),
    ("MX lookup failed", "issue #16"),
    ("bad destination host 'x'", "issue #16"),
    (
        "5.1.2 - Bad destination host 'DNS Hard Error looking up example.org (A):  "
        "domain has no A record' (delivery attempts: 0)",
        "Cisco AsyncOS",
    ),
    ("The domain in the email address is invalid", "issue #16 (2 before)"),
    ("DNS Error: DNS server returned answer with no data", "Gmail"),
    ("all host address lookups failed permanently", "Exim"),
]

# (words, status): kept as the shared corpus labels them, or as a sender's refusal
KEPT = [
    # a null MX (RFC 7505): the shared corpus labels six such rows 7
    ("Domain example.org does not accept mail (nullMX)", 7),
    ("Domain example.org sends and receives no email (NULL MX)", 7),
    ("an MX or SRV record indicated no SMTP service", 7),
    # a temporary DNS failure named in a final notice (lhost-postfix-34, lhost-sendmail-11)
    (
        "Host or domain name not found. Name service error for name=example.org type=MX: "
        "Host not found, try again",
        7,
    ),
    ("Name server: example.org.: host name lookup failure", 7),
    ("Too many failures (DNS lookup failure: Error: queryMx ESERVFAIL example.org)", 7),
    ("Too many failures (DNS lookup failure: Error: queryMx ETIMEOUT example.org)", 7),
    ("DNS lookup failed, try again later", 7),
    ("DNS lookup failed: SERVFAIL", 7),
    ("Temporary failure in MX lookup", 7),  # OpenSMTPD; 99 before
    # labelled 7 in the shared corpus (lhost-opensmtpd-12, lhost-qmail-11/12, lhost-yahoo-09)
    ("No MX found for domain", 7),
    ("Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)", 7),
    ("No mx record found for domain=example.org", 7),
    # a misconfigured destination
    ("mail for example.org loops back to myself", 7),
    ("554 5.4.4 SMTPSEND.DNS.MxLoopback; DNS config error", 7),  # 99 before
    # said of our sender or our HELO name: the sender refused
    ("Sender address rejected: Domain not found", 4),
    ("Helo command rejected: Host not found", 4),  # 1 before
    ("Sender domain has no mail exchanger", 4),
    ("Your domain has no valid mail exchangers", 4),
    ("The domain in your sender address is invalid", 4),
    # Haraka's mail_from.is_resolvable refusing our sender (round 64 ran it as the receiving
    # server: haraka_receiving_cases.yaml labels it 4, as the sender's words above; 7 before)
    ("No MX for your FROM address", 4),
]


def _forms(words: str) -> list[tuple[int, str, str]]:
    return [(550, "", f"550 {words}"), (0, "5.0.0", words), (0, "", words)]


@pytest.mark.parametrize(("words", "source"), UNKNOWN_HOST)
def test_a_permanent_dns_failure_of_the_recipients_domain_is_an_unknown_host(
    words: str, source: str
) -> None:
    for code, enhanced, text in _forms(words):
        got = classify_failure(code, enhanced, text, action="failed")
        assert (got.status, got.reason) == (1, "host-unknown"), (source, code, enhanced, got)


@pytest.mark.parametrize(("words", "status"), KEPT)
def test_the_kinds_left_at_7_and_the_senders_words_keep_their_answer(
    words: str, status: int
) -> None:
    for code, enhanced, text in _forms(words):
        got = classify_failure(code, enhanced, text, action="failed")
        assert got.status == status, (code, enhanced, text, got)


@pytest.mark.parametrize(("words", "source"), UNKNOWN_HOST)
def test_the_same_words_in_a_temporary_failure_stay_temporary(words: str, source: str) -> None:
    got = classify_failure(450, "4.4.3", f"450 4.4.3 {words}", action="delayed")
    assert got.status != 1 and not got.permanent, (source, got)


def test_a_qmail_notice_under_its_own_5_4_4_keeps_the_shared_corpus_answer() -> None:
    # qmail-remote's perm_nomx: the MX hosts have no address; the shared corpus labels it 7
    text = "Sorry, I couldn't find a mail exchanger or IP address. (#5.4.4)"
    assert classify_failure(0, "5.4.4", text, action="failed").status == 7
    # its perm_dns (the domain itself not found) is an unknown host
    text = "Sorry, I couldn't find any host named example.org. (#5.1.2)"
    assert classify_failure(0, "5.1.2", text, action="failed").status == 1
