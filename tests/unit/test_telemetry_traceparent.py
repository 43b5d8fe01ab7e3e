"""A batch item's trace context (``extract_traceparent``) is the context the W3C propagator
makes of the same header, whether it is read directly (the usual form) or left to the
propagator (anything else)."""

from __future__ import annotations

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from postline.common.telemetry import extract_traceparent

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"


def _propagators(traceparent: str) -> tuple[trace.SpanContext, otel_context.Context]:
    carrier = {"traceparent": traceparent} if traceparent else {}
    context = TraceContextTextMapPropagator().extract(carrier)
    return trace.get_current_span(context).get_span_context(), context


def _ours(traceparent: str) -> tuple[trace.SpanContext, otel_context.Context]:
    attached = extract_traceparent(traceparent)
    try:
        return trace.get_current_span().get_span_context(), otel_context.get_current()
    finally:
        attached.detach()


@pytest.mark.parametrize(
    "traceparent",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"00-{TRACE}-{SPAN}-00",
        f"00-{TRACE}-{SPAN}-ff",
        "",
        f"00-{'0' * 32}-{SPAN}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE.upper()}-{SPAN}-01",
        f"ff-{TRACE}-{SPAN}-01",
        f"01-{TRACE}-{SPAN}-01-what-comes-later",
        f"00-{TRACE}-{SPAN}-01-extra",
        f"  00-{TRACE}-{SPAN}-01  ",
        f"00-{TRACE[:-1]}-{SPAN}-01",
        f"00-0x{TRACE[2:]}-{SPAN}-01",
        "garbage",
    ],
)
def test_the_same_context_as_the_propagator(traceparent: str) -> None:
    before = otel_context.get_current()
    found, current = _ours(traceparent)
    expected, context = _propagators(traceparent)
    assert found == expected
    assert found.is_remote == expected.is_remote
    assert found.trace_flags == expected.trace_flags
    assert found.trace_state == expected.trace_state
    assert list(current) == list(context)  # the span's key, or nothing
    assert otel_context.get_current() == before  # detached


def test_nothing_else_of_the_current_context_is_kept() -> None:
    token = otel_context.attach(otel_context.set_value("other", 1))
    try:
        found, current = _ours(f"00-{TRACE}-{SPAN}-01")
        assert otel_context.get_value("other", current) is None
        assert format(found.trace_id, "032x") == TRACE
        assert format(found.span_id, "016x") == SPAN
    finally:
        otel_context.detach(token)
