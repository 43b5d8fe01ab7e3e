"""A broker that is down or slow: 451 4.3.0, nothing published, and mail again after recovery.

The relay reaches RabbitMQ through a TCP proxy the test can stall (a slow broker: bytes held)
or cut (a broker that is down: connections closed, new ones refused). What was published is
read from RabbitMQ directly.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator

import pytest

from tests.integration.smtp_support import (
    SECRET,
    USER,
    BrokerProxy,
    LoopThread,
    Relay,
    policy,
    queued_deliveries,
    queued_events,
    running_relay,
    take_deliveries,
)
from tests.polling import poll_until

PUBLISH_TIMEOUT = 1.0
MESSAGE = b"From: app@example.test\r\nSubject: outage\r\n\r\nHello.\r\n"


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture
def proxy(loop: LoopThread) -> Iterator[BrokerProxy]:
    proxy = BrokerProxy()
    loop.run(proxy.start())
    yield proxy
    loop.run(proxy.stop())


@pytest.fixture
def relay(loop: LoopThread, amqp_url: str, proxy: BrokerProxy) -> Iterator[Relay]:
    relay = Relay(proxy.url(amqp_url), policy(), publish_timeout=PUBLISH_TIMEOUT)
    with running_relay(loop, relay):
        yield relay


def send(relay: Relay, rcpts: list[str]) -> str:
    with smtplib.SMTP(relay.host, relay.port, timeout=30) as smtp:
        smtp.login(USER, SECRET)
        assert smtp.mail("app@example.test")[0] == 250
        for rcpt in rcpts:
            assert smtp.rcpt(rcpt)[0] == 250
        code, text = smtp.data(MESSAGE)
        return f"{code} {text.decode()}"


def accepted_after_recovery(relay: Relay) -> str:
    # aio-pika reconnects on its own schedule; a client retries until the relay accepts.
    def attempt() -> str | None:
        answer = send(relay, ["after@a.test"])
        return answer if answer.startswith("250") else None

    answer = poll_until(attempt, "the relay to accept mail again", timeout=60, every=0.5)
    assert answer is not None
    return answer


def test_broker_down_gives_451_and_nothing_published(
    relay: Relay, proxy: BrokerProxy, loop: LoopThread, amqp_url: str
) -> None:
    assert send(relay, ["before@a.test"]).startswith("250 2.0.0")
    assert [d.recipient for d in take_deliveries(loop, amqp_url)] == ["before@a.test"]
    poll_until(lambda: queued_events(loop, amqp_url) == 1, "the queued event of the first mail")

    loop.run(proxy.cut())
    # Recipients on several shards: not one of them may be published.
    answer = send(relay, ["down@a.test", "down@b.test", "down@c.test"])
    assert answer == "451 4.3.0 Error: queue unavailable, try again later"
    assert queued_deliveries(loop, amqp_url) == 0

    loop.run(proxy.restore())
    accepted_after_recovery(relay)
    assert [d.recipient for d in take_deliveries(loop, amqp_url)] == ["after@a.test"]
    poll_until(lambda: queued_events(loop, amqp_url) == 2, "the queued event after recovery")


def test_a_slow_broker_gives_451_within_the_publish_timeout(
    relay: Relay, proxy: BrokerProxy, loop: LoopThread, amqp_url: str
) -> None:
    loop.run(proxy.stall())
    started = time.monotonic()
    answer = send(relay, ["slow@a.test", "slow@b.test"])
    elapsed = time.monotonic() - started
    assert answer == "451 4.3.0 Error: queue unavailable, try again later"
    assert elapsed < PUBLISH_TIMEOUT + 5  # bounded: the client is not kept waiting
    assert queued_deliveries(loop, amqp_url) == 0

    # The stalled link dies (held bytes dropped); a new connection works.
    loop.run(proxy.cut())
    loop.run(proxy.restore())
    accepted_after_recovery(relay)
    assert [d.recipient for d in take_deliveries(loop, amqp_url)] == ["after@a.test"]
