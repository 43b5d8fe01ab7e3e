"""Trace context across every boundary, in process: the send API honours a client's
``traceparent`` over HTTP and over gRPC, a gRPC client's span is the server's parent, and a
delivery taken up after a wait is linked to the span that parked it.

Spans are recorded by an SDK tracer provider with an in-memory exporter, set once for the
test process (nothing else in the tests sets one).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY

from postline.common.semconv import (
    DELIVERY_ID,
    METRIC_BROKER_RECEIVED,
    SPAN_GRANT,
    SPAN_RESULT,
    SPAN_SCHEDULE,
    WAIT,
    WAIT_UNTIL,
)
from postline.common.telemetry import grpc_client_interceptors
from postline.ingress.grpc_server import GrpcServer
from postline.v1 import delivery_pb2, send_pb2_grpc
from tests.integration.scheduler_support import (
    POLICY,
    accept,
    owns_all,
    running,
    write_policy,
)
from tests.integration.scheduler_support import harness as scheduler_harness
from tests.integration.send_api_support import AUTH, bearer, harness, message, request, take_events
from tests.polling import apoll_until

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def backlog_links(
    spans: InMemorySpanExporter, grants: list[ReadableSpan], ids: set[str]
) -> list[tuple[ReadableSpan, ReadableSpan]]:
    """Each grant of a backlogged delivery links to the schedule span that queued it (the
    same delivery); the pairs (grant, schedule span)."""
    schedules = {s.context.span_id: s for s in named(spans, SPAN_SCHEDULE)}
    pairs = []
    for grant in grants:
        assert (grant.attributes or {})[DELIVERY_ID] in ids
        (link,) = grant.links
        assert (link.attributes or {})[WAIT] == "backlog"
        queued_by = schedules[link.context.span_id]
        assert (queued_by.attributes or {})[DELIVERY_ID] == (grant.attributes or {})[DELIVERY_ID]
        pairs.append((grant, queued_by))
    return pairs


def named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


async def test_the_send_api_honours_a_clients_traceparent(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        answer = await h.client.post(
            "/api/v1/send", json=message(), headers={**bearer(), "traceparent": TRACEPARENT}
        )
    assert answer.status_code == 202, answer.text
    events = await take_events(amqp_url)
    assert events and all(e.trace_id == TRACE_ID for e in events)


async def test_grpc_metadata_carries_the_trace_both_ways(
    amqp_url: str, spans: InMemorySpanExporter
) -> None:
    async with harness(amqp_url) as h:
        server = GrpcServer(h.api, "127.0.0.1:0")
        await server.start()
        try:
            address = f"127.0.0.1:{server.port}"
            # A client's traceparent in the call's metadata...
            async with grpc.aio.insecure_channel(address) as channel:
                stub = send_pb2_grpc.SendServiceStub(channel)
                await stub.Send(request(), metadata=(*AUTH, ("traceparent", TRACEPARENT)))
            # ...and a client that traces: its span is the server's parent.
            client_tracer = trace.get_tracer("test-client")
            async with grpc.aio.insecure_channel(
                address, interceptors=grpc_client_interceptors()
            ) as channel:
                stub = send_pb2_grpc.SendServiceStub(channel)
                with client_tracer.start_as_current_span("caller") as caller:
                    await stub.Send(request(to=["b@b.test"]), metadata=AUTH)
        finally:
            await server.stop(grace=1)
    events = {e.recipient: e for e in await take_events(amqp_url)}
    assert events["alice@a.test"].trace_id == TRACE_ID
    caller_trace = format(caller.get_span_context().trace_id, "032x")
    assert events["b@b.test"].trace_id == caller_trace
    served = [
        s
        for s in spans.get_finished_spans()
        if s.kind == trace.SpanKind.SERVER and s.name.endswith("SendService/Send")
    ]
    assert {format(s.context.trace_id, "032x") for s in served} == {TRACE_ID, caller_trace}


async def test_a_retried_delivery_is_linked_to_the_span_that_parked_it(
    amqp_url: str, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    policy = write_policy(tmp_path, rest=POLICY)
    async with (
        scheduler_harness(amqp_url) as (broker, senders, _events),
        running(amqp_url, policy) as svc,
    ):
        await owns_all(svc)
        delivery = await accept(broker, "greylist@a.test")
        first = (await apoll_until(lambda: senders.for_rcpt("greylist@a.test"), "attempt 1"))[0]
        await senders.answer(first, delivery_pb2.OUTCOME_DEFERRED, 451, "4.7.1 Greylisted")
        await apoll_until(
            lambda: len(senders.for_rcpt("greylist@a.test")) == 2, "attempt 2 after the wait"
        )

    def of_delivery(name: str) -> list[ReadableSpan]:
        return [
            s
            for s in named(spans, name)
            if (s.attributes or {}).get(DELIVERY_ID) == delivery.delivery_id
        ]

    (parking,) = of_delivery(SPAN_RESULT)
    resumed = [s for s in of_delivery(SPAN_SCHEDULE) if s.links]
    assert len(resumed) == 1, "the retry is a decision span of its own"
    (link,) = resumed[0].links
    assert link.context.span_id == parking.context.span_id
    assert (link.attributes or {})[WAIT] == "retry"
    assert (link.attributes or {})[WAIT_UNTIL] > 0
    assert resumed[0].context.trace_id == parking.context.trace_id, "still the delivery's trace"
    # No span covers the wait: the resumed decision starts after the parking one ended.
    assert resumed[0].start_time is not None and parking.end_time is not None
    assert resumed[0].start_time >= parking.end_time


async def test_a_backlogged_delivery_is_linked_to_the_span_that_queued_it(
    amqp_url: str, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    policy = write_policy(tmp_path, speed="      - match: [one.test]\n        connections: 1\n")
    async with (
        scheduler_harness(amqp_url) as (broker, senders, _events),
        running(amqp_url, policy) as svc,
    ):
        await owns_all(svc)
        # One in flight, one waiting in memory, the rest in the key's backlog queue.
        accepted = [await accept(broker, f"user{i}@one.test") for i in range(4)]
        for _ in range(4):
            await apoll_until(lambda: senders.pending, "a grant")
            await senders.answer(next(iter(senders.pending.values())))
        await apoll_until(lambda: len(senders.tasks) == 4, "every one sent")

    grants = named(spans, SPAN_GRANT)
    assert grants, "a delivery taken from the backlog is a decision span of its own"
    backlog_links(spans, grants, {d.delivery_id for d in accepted})


async def test_deliveries_backlogged_together_are_each_linked_to_the_span_that_queued_them(
    amqp_url: str, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    labels = {"type": delivery_pb2.DeliveryTasks.DESCRIPTOR.full_name}
    before = REGISTRY.get_sample_value(METRIC_BROKER_RECEIVED, labels) or 0.0
    policy = write_policy(tmp_path, speed="      - match: [four.test]\n        connections: 4\n")
    async with (
        scheduler_harness(amqp_url) as (broker, senders, _events),
        running(amqp_url, policy) as svc,
    ):
        await owns_all(svc)
        # Arriving together, those beyond the four in flight and four in memory go to the
        # backlog queue several to a message (a batch carries each one's trace context).
        accepted = await asyncio.gather(*(accept(broker, f"user{i}@four.test") for i in range(24)))
        while len(senders.tasks) < 24 or senders.pending:
            await apoll_until(lambda: senders.pending, "a grant")
            await senders.answer_all()
    assert (REGISTRY.get_sample_value(METRIC_BROKER_RECEIVED, labels) or 0.0) > before

    grants = named(spans, SPAN_GRANT)
    assert grants
    for grant, queued_by in backlog_links(spans, grants, {d.delivery_id for d in accepted}):
        assert grant.context.trace_id == queued_by.context.trace_id, "the delivery's own trace"
