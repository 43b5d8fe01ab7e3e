"""Sender attempts against the destination simulator over real SMTP sockets, with STARTTLS
certificates from a test CA and MX records from a local DNS server (no network)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import dkim
import pytest

from postline.common.policy import DkimAlgorithm, Policy
from postline.common.resolver import make_resolver
from postline.common.verp import decode_verp
from postline.sender import dkim_keys
from postline.sender.attempt import Deliverer
from postline.sender.mx import MxResolver
from postline.sender.pool import SessionPool, Share, alone
from postline.sender.smtp import Endpoint, SmtpSession, SmtpTimeouts
from postline.sender.tls import TlsContexts
from postline.simulator import Simulator
from postline.simulator.records import MessageRecord
from postline.v1 import delivery_pb2
from tests.polling import apoll_until
from tests.sender_support import DnsServer, Zone, sender_policy, task
from tests.tls_support import CertFiles, make_ca

SUCCEEDED = delivery_pb2.OUTCOME_SUCCEEDED
DEFERRED = delivery_pb2.OUTCOME_DEFERRED
FAILED = delivery_pb2.OUTCOME_FAILED
REQUIRED = delivery_pb2.TLS_MODE_REQUIRED
TIMEOUTS = SmtpTimeouts(
    connect=5, greeting=10, ehlo=10, starttls=10, mail=10, rcpt=10, data_init=10,
    data_block=10, data_end=10, rset=5, quit=2,
)  # fmt: skip
CERT_NAMES = ("mx.a.test", "mx.secure.test", "localhost", "127.0.0.1")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    return make_ca(tmp_path_factory.mktemp("tls"), *CERT_NAMES)


@pytest.fixture
async def sim(certs: CertFiles) -> AsyncIterator[Simulator]:
    """The simulator offering STARTTLS with a certificate of the test CA."""
    simulator = Simulator(
        "127.0.0.1",
        0,
        control_port=None,
        tls_cert=certs.cert_file,
        tls_key=certs.key_file,
        slow_seconds=1.0,
    )
    async with simulator:
        yield simulator


@pytest.fixture
async def plain_sim() -> AsyncIterator[Simulator]:
    """A simulator without STARTTLS."""
    async with Simulator("127.0.0.1", 0, control_port=None) as simulator:
        yield simulator


@pytest.fixture
async def dns_server() -> AsyncIterator[DnsServer]:
    server = await DnsServer(Zone()).start()
    try:
        yield server
    finally:
        server.close()


Make = Callable[..., Deliverer]


@pytest.fixture
async def make(dns_server: DnsServer, certs: CertFiles) -> AsyncIterator[Make]:
    pools: list[SessionPool] = []

    def build(
        policy: Policy | None = None,
        *,
        smtp_port: int = 25,
        ca_file: Path | None = None,
        timeouts: SmtpTimeouts = TIMEOUTS,
        idle_timeout: float = 5.0,
        clock: Callable[[], float] | None = None,
        share: Share = alone,
    ) -> Deliverer:
        contexts = TlsContexts(ca_file if ca_file is not None else certs.ca_file)

        async def opener(endpoint: Endpoint) -> SmtpSession:
            return await SmtpSession.open(
                endpoint, helo_name="sender.test", timeouts=timeouts, tls=contexts
            )

        pool = SessionPool(opener, idle_timeout=idle_timeout, share=share)
        pools.append(pool)
        resolver = make_resolver([("127.0.0.1", dns_server.port)], timeout=5)
        mx = MxResolver(resolver, clock=clock) if clock else MxResolver(resolver)
        return Deliverer(policy or sender_policy(), mx, pool, smtp_port=smtp_port)

    yield build
    for pool in pools:
        await pool.close()


def route(sim: Simulator) -> tuple[str, int]:
    return ("127.0.0.1", sim.smtp_port)


def arrived(sim: Simulator, rcpt: str) -> list[MessageRecord]:
    return sim.recorder.messages(rcpt=rcpt)


# -- outcomes ----------------------------------------------------------------------------------


async def test_accepted_mail_succeeds_with_opportunistic_tls(sim: Simulator, make: Make) -> None:
    deliverer = make()
    t = task("someone@a.test", route=route(sim))
    result = await deliverer.attempt(t)

    assert result.outcome == SUCCEEDED, result.reply_text
    assert result.reply_code == 250
    assert result.enhanced_status == "2.0.0"
    assert result.stage == "data"
    assert result.mx_host == "127.0.0.1"
    assert result.mx_address == f"127.0.0.1:{sim.smtp_port}"
    assert result.source_ip == "127.0.0.1"
    assert result.tls and result.tls_version.startswith("TLSv1.")
    assert not result.tls_verified  # opportunistic: encrypted, not authenticated
    assert result.started_at.ToNanoseconds() <= result.finished_at.ToNanoseconds()
    [record] = arrived(sim, "someone@a.test")
    assert record.tls
    assert record.helo == "sender.test"


@pytest.mark.parametrize(
    ("local", "outcome", "code", "enhanced", "stage"),
    [
        ("user-unknown", FAILED, 550, "5.1.1", "rcpt"),
        ("mailbox-full", FAILED, 552, "5.2.2", "rcpt"),
        ("reject", FAILED, 554, "5.7.1", "rcpt"),
        ("greylist", DEFERRED, 451, "4.7.1", "rcpt"),
        ("tempfail", DEFERRED, 421, "4.4.2", "rcpt"),
    ],
)
async def test_each_reply_class_maps_to_its_outcome(
    sim: Simulator, make: Make, local: str, outcome: int, code: int, enhanced: str, stage: str
) -> None:
    result = await make().attempt(task(f"{local}@a.test", route=route(sim)))
    assert (result.outcome, result.reply_code, result.enhanced_status, result.stage) == (
        outcome,
        code,
        enhanced,
        stage,
    ), result.reply_text
    assert arrived(sim, f"{local}@a.test") == []


async def test_a_refused_connection_is_deferred(make: Make) -> None:
    result = await make().attempt(task(route=("127.0.0.1", 9)))  # nothing listens on port 9
    assert result.outcome == DEFERRED
    assert (result.reply_code, result.enhanced_status, result.stage) == (421, "4.4.1", "connect")
    assert "connection to" in result.reply_text


async def test_a_timeout_is_deferred(sim: Simulator, make: Make) -> None:
    deliverer = make(timeouts=dataclasses.replace(TIMEOUTS, data_end=0.2))
    result = await deliverer.attempt(task("slow@a.test", route=route(sim)))
    assert result.outcome == DEFERRED
    assert (result.reply_code, result.enhanced_status, result.stage) == (421, "4.4.2", "data")
    assert "final dot" in result.reply_text


# -- connection reuse ---------------------------------------------------------------------------


async def test_one_session_carries_several_messages(sim: Simulator, make: Make) -> None:
    deliverer = make()
    results = [await deliverer.attempt(task(f"user{i}@a.test", route=route(sim))) for i in range(4)]
    assert [r.outcome for r in results] == [SUCCEEDED] * 4
    assert [r.connection_reused for r in results] == [False, True, True, True]
    assert [r.session_messages for r in results] == [1, 2, 3, 4]
    assert [r.connect_ms for r in results[1:]] == [0, 0, 0]
    sessions = {m.session_id for m in sim.recorder.messages(domain="a.test")}
    assert len(sessions) == 1
    assert deliverer.pool.opened == 1


async def test_a_session_carries_at_most_messages_per_connection(
    sim: Simulator, make: Make
) -> None:
    policy = sender_policy(
        """
        speed:
          - match: ["*"]
            messages_per_connection: 2
        """
    )
    deliverer = make(policy)
    for i in range(5):
        result = await deliverer.attempt(task(f"user{i}@a.test", route=route(sim)))
        assert result.outcome == SUCCEEDED
    sessions = [m.session_id for m in sim.recorder.messages(domain="a.test")]
    assert len(set(sessions)) == 3  # 2 + 2 + 1
    assert sessions[0] == sessions[1] != sessions[2] == sessions[3] != sessions[4]


async def test_a_rejected_recipient_leaves_the_session_reusable(sim: Simulator, make: Make) -> None:
    deliverer = make()
    rejected = await deliverer.attempt(task("user-unknown@a.test", route=route(sim)))
    accepted = await deliverer.attempt(task("someone@a.test", route=route(sim)))
    assert rejected.outcome == FAILED
    assert accepted.outcome == SUCCEEDED
    assert accepted.connection_reused  # RSET after the failed RCPT, then the next mail
    assert deliverer.pool.opened == 1


async def test_a_421_drops_the_session(sim: Simulator, make: Make) -> None:
    deliverer = make()
    dropped = await deliverer.attempt(task("tempfail@a.test", route=route(sim)))
    after = await deliverer.attempt(task("someone@a.test", route=route(sim)))
    assert dropped.outcome == DEFERRED
    assert after.outcome == SUCCEEDED
    assert not after.connection_reused
    assert deliverer.pool.opened == 2


async def test_a_session_the_server_closed_while_idle_is_replaced(
    sim: Simulator, make: Make
) -> None:
    deliverer = make()
    first = await deliverer.attempt(task("one@a.test", route=route(sim)))
    for connection in list(sim._connections):  # the destination drops idle connections
        connection.close()
    await apoll_until(lambda: sim.recorder.stats()["connections"]["current"] == 0, "the drop")
    second = await deliverer.attempt(task("two@a.test", route=route(sim)))
    assert first.outcome == second.outcome == SUCCEEDED
    assert not second.connection_reused
    assert len(arrived(sim, "two@a.test")) == 1


async def test_idle_sessions_are_closed(sim: Simulator, make: Make) -> None:
    deliverer = make(idle_timeout=0.3)
    result = await deliverer.attempt(task(route=route(sim)))
    assert result.outcome == SUCCEEDED
    assert sim.recorder.stats()["connections"]["current"] == 1  # kept for reuse
    await apoll_until(lambda: sim.recorder.stats()["connections"]["current"] == 0, "idle close")
    assert deliverer.pool.open_sessions("domain:a.test") == 0


async def test_sessions_per_destination_stay_within_connections(sim: Simulator, make: Make) -> None:
    policy = sender_policy(
        """
        speed:
          - match: ["*"]
            connections: 1
        """,
        pool=("127.0.0.2", "127.0.0.3"),
    )
    deliverer = make(policy)
    # From two source IPs in turn: the idle session from the other IP is closed first.
    for ip in ("127.0.0.2", "127.0.0.3", "127.0.0.2"):
        result = await deliverer.attempt(task(route=route(sim), source_ip=ip))
        assert result.outcome == SUCCEEDED
        assert deliverer.pool.open_sessions("domain:a.test") == 1
    assert sim.recorder.stats()["domains"]["a.test"]["peak_connections"] == 1


def limited_policy(connections: int) -> Policy:
    return sender_policy(
        f"""
        speed:
          - match: ["*"]
            connections: {connections}
            messages_per_connection: 100
        """
    )


async def test_senders_share_a_destinations_connections(sim: Simulator, make: Make) -> None:
    # Two senders, 4 connections: this one holds at most 2 sessions, and deliveries beyond
    # them wait for one (each holds its grant) instead of opening more.
    deliverer = make(limited_policy(4), share=lambda: 2)
    tasks = [task(f"slow+{i}@a.test", route=route(sim)) for i in range(5)]
    results = await asyncio.gather(*(deliverer.attempt(t) for t in tasks))
    assert [r.outcome for r in results] == [SUCCEEDED] * 5
    assert sim.recorder.stats()["connections"]["peak"] == 2
    assert sim.recorder.stats()["connections"]["total"] == 2  # and reused
    assert deliverer.pool.waited == 3


async def test_fewer_connections_than_senders_keeps_no_session(sim: Simulator, make: Make) -> None:
    # Three senders, 2 connections: no sender may keep one, so each delivery opens its own
    # session and has closed it (QUIT answered) before its result is made.
    deliverer = make(limited_policy(2), share=lambda: 3)
    for rcpt in ("one@a.test", "two@a.test"):
        result = await deliverer.attempt(task(rcpt, route=route(sim)))
        assert result.outcome == SUCCEEDED
        assert deliverer.pool.open_sessions("domain:a.test") == 0
        # The server notices the close a moment after the QUIT's answer.
        await apoll_until(lambda: sim.recorder.stats()["connections"]["current"] == 0, "close", 1.0)
    assert sim.recorder.stats()["connections"]["total"] == 2


async def test_a_sender_that_does_not_know_its_share_waits(sim: Simulator, make: Make) -> None:
    senders: list[int | None] = [None]  # joining the other senders
    deliverer = make(limited_policy(4), share=lambda: senders[0])
    attempt = asyncio.ensure_future(deliverer.attempt(task("waits@a.test", route=route(sim))))
    await asyncio.sleep(0.3)
    assert not attempt.done()
    assert sim.recorder.stats()["connections"]["total"] == 0
    senders[0] = 2
    deliverer.pool.reshare()
    result = await asyncio.wait_for(attempt, 10)
    assert result.outcome == SUCCEEDED


async def test_a_smaller_share_closes_idle_sessions_over_it(sim: Simulator, make: Make) -> None:
    senders = [1]
    deliverer = make(limited_policy(4), share=lambda: senders[0])
    tasks = [task(f"slow+{i}@a.test", route=route(sim)) for i in range(4)]
    await asyncio.gather(*(deliverer.attempt(t) for t in tasks))
    assert sim.recorder.stats()["connections"]["current"] == 4  # idle, kept for reuse
    senders[0] = 2  # another sender joined
    deliverer.pool.reshare()
    await apoll_until(
        lambda: sim.recorder.stats()["connections"]["current"] == 2, "2 sessions left"
    )
    assert deliverer.pool.open_sessions("domain:a.test") == 2


# -- source IPs -------------------------------------------------------------------------------


async def test_binds_to_the_tasks_source_ip(sim: Simulator, make: Make) -> None:
    result = await make().attempt(task("bound@a.test", route=route(sim), source_ip="127.0.0.2"))
    assert result.outcome == SUCCEEDED
    assert result.source_ip == "127.0.0.2"
    [record] = arrived(sim, "bound@a.test")
    assert record.peer.startswith("127.0.0.2:")


async def test_spreads_over_the_pools_source_ips(sim: Simulator, make: Make) -> None:
    policy = sender_policy(
        """
        speed:
          - match: ["*"]
            source_ips: 2
        """,
        pool=("127.0.0.2", "127.0.0.3"),
    )
    deliverer = make(policy)
    results = await asyncio.gather(
        *(deliverer.attempt(task(f"slow{i}@a.test", route=route(sim))) for i in range(2))
    )
    assert {r.source_ip for r in results} == {"127.0.0.2", "127.0.0.3"}
    peers = {m.peer.split(":")[0] for m in sim.recorder.messages(domain="a.test")}
    assert peers == {"127.0.0.2", "127.0.0.3"}


# -- TLS ----------------------------------------------------------------------------------------


async def test_required_tls_validates_the_certificate(sim: Simulator, make: Make) -> None:
    result = await make().attempt(task(route=("localhost", sim.smtp_port), tls=REQUIRED))
    assert result.outcome == SUCCEEDED, result.reply_text
    assert result.tls and result.tls_verified
    assert arrived(sim, "someone@a.test")[0].tls


async def test_required_tls_fails_clearly_without_starttls(
    plain_sim: Simulator, make: Make
) -> None:
    result = await make().attempt(task(route=route(plain_sim), tls=REQUIRED))
    assert result.outcome == DEFERRED
    assert (result.reply_code, result.enhanced_status, result.stage) == (421, "4.7.4", "starttls")
    assert "TLS is required" in result.reply_text and "does not offer STARTTLS" in result.reply_text
    assert plain_sim.recorder.messages() == []


async def test_required_tls_refuses_an_untrusted_certificate(
    sim: Simulator, make: Make, tmp_path: Path
) -> None:
    other_ca = make_ca(tmp_path / "other", "elsewhere.test")
    result = await make(ca_file=other_ca.ca_file).attempt(
        task(route=("localhost", sim.smtp_port), tls=REQUIRED)
    )
    assert result.outcome == DEFERRED
    assert (result.enhanced_status, result.stage) == ("4.7.5", "starttls")
    assert "certificate not trusted" in result.reply_text
    assert sim.recorder.messages() == []


async def test_opportunistic_tls_goes_on_in_clear_without_starttls(
    plain_sim: Simulator, make: Make
) -> None:
    result = await make().attempt(task(route=route(plain_sim)))
    assert result.outcome == SUCCEEDED
    assert not result.tls
    assert not plain_sim.recorder.messages()[0].tls


async def test_require_tls_in_the_policy_overrides_an_opportunistic_task(
    plain_sim: Simulator, make: Make
) -> None:
    policy = sender_policy("require_tls: [a.test]\n")
    result = await make(policy).attempt(task(route=route(plain_sim)))
    assert (result.outcome, result.enhanced_status) == (DEFERRED, "4.7.4")


# -- DNS ----------------------------------------------------------------------------------------


async def test_mx_hosts_are_tried_in_preference_order(
    sim: Simulator, make: Make, dns_server: DnsServer
) -> None:
    zone = dns_server.zone
    zone.add("pref.test", "MX", "20 mx.a.test.", "10 mx-down.pref.test.")
    zone.add("mx.a.test", "A", "127.0.0.1")
    zone.add("mx-down.pref.test", "A", "127.0.0.9")  # nothing listens there
    result = await make(smtp_port=sim.smtp_port).attempt(task("someone@pref.test"))
    assert result.outcome == SUCCEEDED, result.reply_text
    assert result.mx_host == "mx.a.test"
    assert len(arrived(sim, "someone@pref.test")) == 1


async def test_required_tls_checks_the_certificate_against_the_mx_name(
    sim: Simulator, make: Make, dns_server: DnsServer
) -> None:
    dns_server.zone.add("secure.test", "MX", "10 mx.secure.test.")
    dns_server.zone.add("mx.secure.test", "A", "127.0.0.1")
    policy = sender_policy("require_tls: [secure.test]\n")
    result = await make(policy, smtp_port=sim.smtp_port).attempt(task("someone@secure.test"))
    assert result.outcome == SUCCEEDED, result.reply_text
    assert result.tls_verified


async def test_a_domain_without_mx_falls_back_to_its_address(
    sim: Simulator, make: Make, dns_server: DnsServer
) -> None:
    dns_server.zone.add("implicit.test", "A", "127.0.0.1")
    result = await make(smtp_port=sim.smtp_port).attempt(task("someone@implicit.test"))
    assert result.outcome == SUCCEEDED, result.reply_text
    assert result.mx_host == "implicit.test"


@pytest.mark.parametrize(
    ("domain", "code", "enhanced"),
    [("nowhere.test", 550, "5.1.2"), ("null.test", 556, "5.1.10")],
)
async def test_nxdomain_and_null_mx_fail(
    make: Make, dns_server: DnsServer, domain: str, code: int, enhanced: str
) -> None:
    dns_server.zone.add("null.test", "MX", "0 .")
    result = await make().attempt(task(f"someone@{domain}"))
    assert result.outcome == FAILED
    assert (result.reply_code, result.enhanced_status, result.stage) == (code, enhanced, "dns")


async def test_mx_answers_are_cached_for_their_ttl(
    sim: Simulator, make: Make, dns_server: DnsServer
) -> None:
    dns_server.zone.add("cached.test", "MX", "10 mx.a.test.")
    dns_server.zone.add("mx.a.test", "A", "127.0.0.1")
    clock = Clock()
    deliverer = make(smtp_port=sim.smtp_port, clock=clock)
    for i in range(3):
        assert (await deliverer.attempt(task(f"u{i}@cached.test"))).outcome == SUCCEEDED
    assert dns_server.queries[("cached.test", "MX")] == 1
    clock.now += dns_server.zone.ttl + 1
    assert (await deliverer.attempt(task("later@cached.test"))).outcome == SUCCEEDED
    assert dns_server.queries[("cached.test", "MX")] == 2


async def test_a_route_bypasses_dns(sim: Simulator, make: Make, dns_server: DnsServer) -> None:
    result = await make().attempt(task("someone@unlisted.test", route=route(sim)))
    assert result.outcome == SUCCEEDED
    assert sum(dns_server.queries.values()) == 0


# -- the message: VERP, Received headers, quoting, DKIM -----------------------------------------


async def test_the_return_path_encodes_the_delivery_id(sim: Simulator, make: Make) -> None:
    t = task("verp@a.test", route=route(sim))
    result = await make().attempt(t)
    [record] = arrived(sim, "verp@a.test")
    assert record.mail_from.endswith("@bounce.example.test")
    assert decode_verp(record.mail_from) == t.delivery.delivery_id
    assert result.task.return_path == record.mail_from  # carried on for events and reports


async def test_a_return_path_from_the_scheduler_is_used_as_is(sim: Simulator, make: Make) -> None:
    t = task("given@a.test", route=route(sim), return_path="bounces@elsewhere.test")
    await make().attempt(t)
    assert arrived(sim, "given@a.test")[0].mail_from == "bounces@elsewhere.test"


async def test_a_null_reverse_path_stays_null(sim: Simulator, make: Make) -> None:
    result = await make().attempt(task("notify@a.test", route=route(sim), envelope_from=""))
    assert result.outcome == SUCCEEDED
    assert arrived(sim, "notify@a.test")[0].mail_from == "<>"
    assert result.task.return_path == ""


async def test_received_headers_are_removed_and_nothing_else_changes(
    sim: Simulator, make: Make
) -> None:
    t = task("clean@a.test", route=route(sim))
    original = t.delivery.content
    await make(sender_policy("strip_received_headers: true\n")).attempt(t)
    raw = arrived(sim, "clean@a.test")[0].raw
    assert b"Received:" in original and b"Received:" not in raw
    assert raw == original[original.index(b"From: ") :]


async def test_received_headers_stay_unless_the_policy_says(sim: Simulator, make: Make) -> None:
    t = task("kept@a.test", route=route(sim))
    await make().attempt(t)
    assert arrived(sim, "kept@a.test")[0].raw == t.delivery.content


async def test_quoted_local_parts_go_on_the_wire_as_the_address_rules_say(
    sim: Simulator, make: Make
) -> None:
    rcpt = '"irregular..pattern"@a.test'
    t = task(rcpt, route=route(sim), return_path='"odd sender"@x.test')
    result = await make().attempt(t)
    assert result.outcome == SUCCEEDED, result.reply_text
    [record] = sim.recorder.messages(domain="a.test")
    assert record.rcpt_paths == (rcpt,)
    assert record.mail_path == '"odd sender"@x.test'


@pytest.mark.parametrize("algorithm", list(DkimAlgorithm))
async def test_dkim_signature_verifies_at_the_destination(
    sim: Simulator, make: Make, tmp_path: Path, algorithm: DkimAlgorithm
) -> None:
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(dkim_keys.generate(algorithm))
    policy = sender_policy(
        f"""
        strip_received_headers: true
        dkim:
          - domain: example.test
            selector: s1
            algorithm: {algorithm.value}
            key: {{file: {key_file}}}
        """
    )
    result = await make(policy).attempt(task("signed@a.test", route=route(sim)))
    assert result.outcome == SUCCEEDED
    assert result.dkim_domain == "example.test"
    raw = arrived(sim, "signed@a.test")[0].raw
    assert raw.startswith(b"DKIM-Signature: ")
    record = dkim_keys.dns_record("example.test", "s1", algorithm, key_file.read_bytes())

    def txt(name: bytes, timeout: int = 5) -> bytes | None:
        return record.value.encode() if name == record.name.encode() else None

    assert dkim.verify(raw, dnsfunc=txt)
    tampered = raw.replace(b"Hello.", b"Hullo.")
    assert not dkim.verify(tampered, dnsfunc=txt)


async def test_an_unusable_dkim_key_defers_rather_than_send_unsigned(
    sim: Simulator, make: Make, tmp_path: Path
) -> None:
    policy = sender_policy(
        f"""
        dkim:
          - {{domain: example.test, selector: s1, key: {{file: {tmp_path / "missing.pem"}}}}}
        """
    )
    result = await make(policy).attempt(task("unsigned@a.test", route=route(sim)))
    assert (result.outcome, result.enhanced_status, result.stage) == (DEFERRED, "4.3.5", "local")
    assert "DKIM key for example.test" in result.reply_text
    assert arrived(sim, "unsigned@a.test") == []


async def test_a_dns_server_that_does_not_answer_defers(certs: CertFiles) -> None:
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # bound, never answers
    silent.bind(("127.0.0.1", 0))
    try:
        resolver = make_resolver([("127.0.0.1", silent.getsockname()[1])], timeout=0.5)

        async def opener(endpoint: Endpoint) -> SmtpSession:
            raise AssertionError("no session without an address")

        pool = SessionPool(opener, idle_timeout=1)
        deliverer = Deliverer(sender_policy(), MxResolver(resolver), pool)
        result = await deliverer.attempt(task("someone@unanswered.test"))
        await pool.close()
    finally:
        silent.close()
    assert (result.outcome, result.enhanced_status, result.stage) == (DEFERRED, "4.4.3", "dns")
