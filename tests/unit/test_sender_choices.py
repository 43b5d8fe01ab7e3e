"""The sender's pure decisions: outcome per reply, TLS mode, source IP, settings."""

from __future__ import annotations

import pytest

from postline.common.tls_modes import NONE, OPPORTUNISTIC, REQUIRED, tls_mode
from postline.sender import sources
from postline.sender.replies import Reply
from postline.sender.settings import SenderSettings
from postline.v1 import delivery_pb2
from tests.sender_support import sender_policy


@pytest.mark.parametrize(
    ("code", "text", "outcome", "enhanced"),
    [
        (250, "2.0.0 OK: queued as 12", delivery_pb2.OUTCOME_SUCCEEDED, "2.0.0"),
        (251, "User not local; will forward", delivery_pb2.OUTCOME_SUCCEEDED, ""),
        (421, "4.4.2 try again later", delivery_pb2.OUTCOME_DEFERRED, "4.4.2"),
        (451, "4.7.1 Greylisted", delivery_pb2.OUTCOME_DEFERRED, "4.7.1"),
        (550, "5.1.1 <a@b>: User unknown\nmore text", delivery_pb2.OUTCOME_FAILED, "5.1.1"),
        (554, "Message rejected", delivery_pb2.OUTCOME_FAILED, ""),
        (556, "5.1.10 null MX", delivery_pb2.OUTCOME_FAILED, "5.1.10"),
    ],
)
def test_reply_outcome_and_enhanced_status(
    code: int, text: str, outcome: int, enhanced: str
) -> None:
    reply = Reply(code, text, "rcpt")
    assert reply.outcome == outcome
    assert reply.enhanced_status == enhanced


def test_tls_mode_takes_the_stricter_of_task_and_policy() -> None:
    server = sender_policy("require_tls: ['*.bank.test', secure.test]\n").server("default")
    assert tls_mode(OPPORTUNISTIC, "a.test", server) == OPPORTUNISTIC
    assert tls_mode(delivery_pb2.TLS_MODE_UNSPECIFIED, "a.test", server) == OPPORTUNISTIC
    assert tls_mode(NONE, "a.test", server) == NONE
    assert tls_mode(NONE, "secure.test", server) == REQUIRED
    assert tls_mode(OPPORTUNISTIC, "mx.bank.test", server) == REQUIRED


def test_source_window_is_stable_per_destination_and_spreads_destinations() -> None:
    pool = ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.4"]
    assert sources.window(pool, 2, "domain:a.test") == sources.window(pool, 2, "domain:a.test")
    assert len(sources.window(pool, 2, "domain:a.test")) == 2
    assert sorted(sources.window(pool, 9, "domain:a.test")) == pool  # never more than the pool
    firsts = {sources.window(pool, 1, f"domain:d{i}.test")[0] for i in range(40)}
    assert len(firsts) > 1
    assert sources.window([], 3, "domain:a.test") == []


def test_source_choice_prefers_an_idle_session_then_the_least_used() -> None:
    candidates = ["10.0.0.1", "10.0.0.2"]
    load = {"10.0.0.1": 3, "10.0.0.2": 1}
    assert sources.choose(candidates, has_idle=lambda ip: False, open_sessions=load.get) == (
        "10.0.0.2"
    )
    assert (
        sources.choose(candidates, has_idle=lambda ip: ip == "10.0.0.1", open_sessions=load.get)
        == "10.0.0.1"
    )
    assert sources.choose([], has_idle=lambda ip: False, open_sessions=load.get) == ""


def test_source_family_must_match_the_destination() -> None:
    assert sources.same_family("127.0.0.2", "192.0.2.1")
    assert not sources.same_family("127.0.0.2", "2001:db8::1")
    assert sources.same_family("", "2001:db8::1")


def test_settings_defaults_are_rfc_5321_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTLINE_AMQP_URL", "amqp://x/")
    monkeypatch.setenv("POSTLINE_POLICY", "/dev/null")
    monkeypatch.setenv("POSTLINE_DNS_SERVERS", "127.0.0.1:5353, [::1]:53, ::1, 10.0.0.53")
    settings = SenderSettings()  # type: ignore[call-arg]
    t = settings.smtp_timeouts()
    assert (t.greeting, t.mail, t.rcpt, t.data_init, t.data_block, t.data_end) == (
        300,
        300,
        300,
        120,
        180,
        600,
    )
    assert settings.dns_nameservers() == [
        ("127.0.0.1", 5353),
        ("::1", 53),
        ("::1", 53),
        ("10.0.0.53", 53),
    ]
