"""What tracing costs per message on a hot path, with nothing sampled and with everything.

Each round does what a service does for one message: extract the trace context from the AMQP
headers, start a span in it with the usual attributes, inject the context into the headers of
what it publishes, end the span. Measured set-ups:

- ``api-only``: no SDK configured (OpenTelemetry's no-op API): the floor;
- ``off``: what services run with by default (``POSTLINE_OTEL_EXPORTER=none``): the SDK with a
  parent-based always-off sampler: ids are made and passed on, nothing is recorded;
- ``on``: everything sampled into a ``BatchSpanProcessor`` whose exporter drops the batches
  (the cost inside the process; sending is the exporter thread's, off the event loop).

    .venv/bin/python bench/telemetry/run.py [--messages 200000] [--rounds 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Sequence

from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased

from postline.common.semconv import DELIVERY_ID, MESSAGE_ID, RECIPIENT_DOMAIN, SERVER, SPAN_SCHEDULE

INCOMING = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
UNSAMPLED = {"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}


class Dropping(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def provider(kind: str) -> trace.TracerProvider:
    resource = Resource.create({"service.name": "postline-bench"})
    if kind == "api-only":
        return trace.NoOpTracerProvider()
    if kind == "off":
        return TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    sdk = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_ON))
    sdk.add_span_processor(BatchSpanProcessor(Dropping(), max_queue_size=1 << 16))
    return sdk


def one_round(tracer: trace.Tracer, messages: int, incoming: dict[str, str]) -> float:
    """Seconds per message."""
    started = time.perf_counter()
    for _ in range(messages):
        context = propagate.extract(incoming)
        with tracer.start_as_current_span(SPAN_SCHEDULE, context=context) as span:
            span.set_attribute(DELIVERY_ID, "01a2444db9fd51e48259400f0918ea6a")
            span.set_attribute(MESSAGE_ID, "01a2444db9fd51e48259400f0918ea6b")
            span.set_attribute(RECIPIENT_DOMAIN, "example.jp")
            span.set_attribute(SERVER, "default")
            headers: dict[str, str] = {}
            propagate.inject(headers)
    return (time.perf_counter() - started) / messages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    for kind, incoming in (
        ("api-only", INCOMING),
        ("off", UNSAMPLED),  # a context made by a service with tracing off
        ("off, sampled parent", INCOMING),  # a client asked for its trace: it is recorded
        ("on", INCOMING),
    ):
        tracer = provider(kind.split(",")[0]).get_tracer("bench")
        one_round(tracer, 1000, incoming)  # warm-up
        rounds = [one_round(tracer, args.messages, incoming) for _ in range(args.rounds)]
        results[kind] = statistics.median(rounds) * 1e6
    if args.json:
        print(json.dumps({"us_per_message": results, "cpus": os.cpu_count()}))
        return
    print(f"{'set-up':<22} µs per message (median of {args.rounds} x {args.messages})")
    for kind, micros in results.items():
        print(f"{kind:<22} {micros:6.1f}")


if __name__ == "__main__":
    main()
