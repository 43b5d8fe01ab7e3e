"""The one consumer loop (common/broker/consumer.py): how each way a handler ends settles its
message. The broker side is a recording stand-in: what is decided here is which call is made."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from postline.common.broker import consumer
from postline.common.broker.consumer import MessageMeta, PoisonMessage, Requeue, consume
from postline.v1 import delivery_pb2


@dataclass
class Incoming:
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    routing_key: str = "scheduler.inbound.0"
    redelivered: bool = False
    settled: list[str] = field(default_factory=list)
    channel_gone: bool = False

    async def _settle(self, how: str) -> None:
        if self.channel_gone:
            raise RuntimeError("channel closed")
        self.settled.append(how)

    def ack(self) -> Any:
        return self._settle("ack")

    def nack(self, requeue: bool = True) -> Any:
        return self._settle("requeue" if requeue else "drop")

    def reject(self, requeue: bool = False) -> Any:
        return self._settle("dead-letter" if not requeue else "requeue")


@dataclass
class Queue:
    name: str = "scheduler.inbound.0"


def _incoming() -> Incoming:
    return Incoming(delivery_pb2.AcceptedDelivery(delivery_id="d1").SerializeToString())


async def _run(
    error: BaseException | None, incoming: Incoming | None = None
) -> tuple[Incoming, list[str]]:
    incoming = incoming or _incoming()
    seen: list[str] = []

    async def handler(message: delivery_pb2.AcceptedDelivery, meta: MessageMeta) -> None:
        seen.append(message.delivery_id)
        if error is not None:
            raise error

    on_message = consume(Queue(), delivery_pb2.AcceptedDelivery, handler)  # type: ignore[arg-type]
    await on_message(incoming)  # type: ignore[arg-type]
    return incoming, seen


async def test_a_handler_that_returns_acks() -> None:
    incoming, seen = await _run(None)
    assert seen == ["d1"] and incoming.settled == ["ack"]


async def test_requeue_gives_the_message_back_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer, "REQUEUE_PAUSE_SECONDS", 60.0)  # a pause would time out
    incoming, _ = await asyncio.wait_for(_run(Requeue()), 5)
    assert incoming.settled == ["requeue"]


async def test_a_failure_requeues_after_a_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consumer, "REQUEUE_PAUSE_SECONDS", 0.0)
    incoming, _ = await _run(ValueError("ClickHouse away"))
    assert incoming.settled == ["requeue"]


async def test_a_poison_message_is_dead_lettered() -> None:
    incoming, _ = await _run(PoisonMessage("never"))
    assert incoming.settled == ["dead-letter"]
    undecodable = Incoming(b"\xff\xff", headers={"x-postline-type": "no.such.Type"})
    on_message = consume(  # type: ignore[arg-type]
        Queue(), {"postline.v1.AcceptedDelivery": delivery_pb2.AcceptedDelivery}, _never
    )
    await on_message(undecodable)  # type: ignore[arg-type]
    assert undecodable.settled == ["dead-letter"]


async def _never(message: Any, meta: MessageMeta) -> None:
    raise AssertionError("not handled")


async def test_a_cancelled_handler_gives_its_message_back_and_stays_cancelled() -> None:
    with pytest.raises(asyncio.CancelledError):
        await _run(asyncio.CancelledError(), incoming := _incoming())
    assert incoming.settled == ["requeue"]


async def test_on_a_closed_channel_nothing_is_settled_and_nothing_raised() -> None:
    gone = _incoming()
    gone.channel_gone = True
    await _run(Requeue(), gone)
    with pytest.raises(asyncio.CancelledError):
        await _run(asyncio.CancelledError(), gone)
    assert gone.settled == []
