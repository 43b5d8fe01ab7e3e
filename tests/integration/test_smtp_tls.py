"""STARTTLS and "AUTH only over TLS", verified with a test CA over real sockets."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from postline.ingress.tls import ensure_dev_certificate, server_context
from tests.integration.smtp_support import (
    OTHER_SECRET,
    OTHER_USER,
    SECRET,
    USER,
    CertAuthority,
    LoopThread,
    Relay,
    make_test_ca,
    policy,
    running_relay,
    take_deliveries,
)

StartRelay = Callable[..., Relay]
MESSAGE = b"From: app@example.test\r\nSubject: tls\r\n\r\nHello.\r\n"


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def ca(tmp_path: Path) -> CertAuthority:
    return make_test_ca(tmp_path / "ca")


@pytest.fixture
def start_relay(loop: LoopThread, amqp_url: str, ca: CertAuthority) -> Iterator[StartRelay]:
    """Start a relay whose STARTTLS certificate the test CA signed."""
    with contextlib.ExitStack() as stack:

        def start(relay_policy: Any = None) -> Relay:
            tls = server_context(ca.server_cert, ca.server_key)
            relay = Relay(amqp_url, relay_policy or policy(), tls_context=tls)
            return stack.enter_context(running_relay(loop, relay))

        yield start


def client(relay: Relay) -> smtplib.SMTP:
    return smtplib.SMTP(relay.host, relay.port, timeout=15)


def test_starttls_with_the_configured_certificate_then_auth(
    start_relay: StartRelay, ca: CertAuthority, loop: LoopThread, amqp_url: str
) -> None:
    relay = start_relay(policy({"plain_auth_on_loopback": False}))
    with client(relay) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("starttls")
        assert not smtp.has_extn("auth")  # not before TLS, even on loopback
        code, text = smtp.starttls(context=ca.client_context())  # verifies against the CA
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        smtp.ehlo()
        assert not smtp.has_extn("starttls")
        assert smtp.esmtp_features["auth"].split() == ["LOGIN", "PLAIN"]
        smtp.login(USER, SECRET)
        smtp.sendmail("app@example.test", ["x@a.test"], MESSAGE)
    assert [d.recipient for d in take_deliveries(loop, amqp_url)] == ["x@a.test"]


def test_auth_without_tls_gets_538(start_relay: StartRelay) -> None:
    relay = start_relay(policy({"plain_auth_on_loopback": False}))
    with client(relay) as smtp:
        smtp.ehlo()
        code, text = smtp.docmd("AUTH", "PLAIN AGRldgBkZXYtc2VjcmV0")
        assert (code, text[:8]) == (538, b"5.7.11 E")


def test_plain_auth_on_loopback_is_the_authenticated_servers_choice(
    start_relay: StartRelay, ca: CertAuthority
) -> None:
    # default allows AUTH without TLS on loopback, campaigns does not.
    relay = start_relay(policy(other={"plain_auth_on_loopback": False}))
    with client(relay) as smtp:
        smtp.ehlo()
        assert smtp.has_extn("auth")
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            smtp.login(OTHER_USER, OTHER_SECRET)
        assert refused.value.smtp_code == 538
        smtp.login(USER, SECRET)
    with client(relay) as smtp:
        smtp.starttls(context=ca.client_context())
        smtp.login(OTHER_USER, OTHER_SECRET)


def test_a_client_that_does_not_trust_the_certificate_fails_the_handshake(
    start_relay: StartRelay, tmp_path: Path
) -> None:
    relay = start_relay()
    stranger = make_test_ca(tmp_path / "other-ca")
    with client(relay) as smtp, pytest.raises(ssl.SSLCertVerificationError):
        smtp.starttls(context=stranger.client_context())


def test_the_dev_certificate_is_made_once_and_serves_localhost(
    tmp_path: Path, loop: LoopThread, amqp_url: str
) -> None:
    cert, key = ensure_dev_certificate(tmp_path / "tls")
    assert (cert, key) == ensure_dev_certificate(tmp_path / "tls")
    assert key.stat().st_mode & 0o077 == 0
    relay = Relay(amqp_url, policy(), tls_context=server_context(cert, key))
    with running_relay(loop, relay), client(relay) as smtp:
        context = ssl.create_default_context(cafile=str(cert))  # self-signed: its own CA
        assert smtp.starttls(context=context)[0] == 220
        smtp.login(USER, SECRET)
