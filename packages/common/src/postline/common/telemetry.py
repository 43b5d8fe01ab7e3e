"""Telemetry set-up, done once per process: tracing, trace context across every boundary,
trace ids in logs.

One trace per delivery: the SMTP or API transaction, the publish, each scheduler decision,
every sender attempt, the bounce classification and the report insert. Context crosses
RabbitMQ in the AMQP headers (W3C ``traceparent``; a batch carries one per item), gRPC in its
metadata (OpenTelemetry's client and server interceptors, ``grpc_*_interceptors``) and the HTTP
APIs in the request headers (OpenTelemetry's FastAPI instrumentation, ``instrument_http``: a
client's ``traceparent`` is honoured). Waits (a retry, prohibited hours, a backlog) are span
links, never spans hours long: the span that resumes a delivery links to the one that made it
wait (``wait_links``). OpenTelemetry's aio-pika instrumentation is not used: it makes one span
and one context per broker message, while a Postline message may carry many deliveries or
events, each in its own trace.

Spans are exported over OTLP (``POSTLINE_OTEL_EXPORTER=otlp``; the standard ``OTEL_*``
variables: ``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL`` ``grpc`` or
``http/protobuf``, ``OTEL_TRACES_SAMPLER``, ``OTEL_BSP_*``...) to a collector, or to the reports
service, which writes them into ClickHouse (``otel_traces``) for the console's timelines.
"""

from __future__ import annotations

import contextvars
import logging
import re
import threading
from collections.abc import Mapping, MutableMapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import Getter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from postline.common.semconv import WAIT, WAIT_UNTIL

if TYPE_CHECKING:
    import grpc

    from postline.common.settings import ServiceSettings

# Why a parked message waited (``Broker.publish_delayed``), for the link of the span that
# takes it up again.
WAIT_HEADER = "x-postline-wait"

# The sampled traces of the items of a batch that carries none in its body (events: each
# names its trace id, not its span): a comma-separated list of W3C traceparents.
TRACEPARENTS_HEADER = "x-postline-traceparents"

# Requests that are not the product's work: probes, scraping, the span receiver itself.
HTTP_UNTRACED = "healthz,readyz,metrics,v1/traces"

_configured = False
_exporters: list[SpanExporter] = []
# Set by ``setup_telemetry``: no span in an unsampled trace is ever recorded (see ``_Tracer``).
_unsampled_stays_unsampled = False


def setup_telemetry(service: str, settings: ServiceSettings) -> None:
    """Configure tracing and logging for a service process (idempotent)."""
    global _configured, _unsampled_stays_unsampled
    if _configured:
        return
    _configured = True
    resource = Resource.create({"service.name": f"postline-{service}"})
    processor = _span_processor(settings.otel_exporter, settings.otlp_protocol)
    if processor is None:
        # Nothing reads the spans: don't record them (a recorded span costs more than twice an
        # unrecorded one, bench/telemetry). Trace ids are still made and passed on, so every
        # report row and log line keeps its trace_id; a sampled parent from a client is still
        # followed.
        provider = TracerProvider(resource=resource, sampler=ParentBased(ALWAYS_OFF))
    else:
        # The sampler comes from OTEL_TRACES_SAMPLER (default: parent-based, always on).
        # Shut down by ``shutdown_telemetry``, with a bounded wait, not at exit.
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        provider.add_span_processor(processor)
    trace.set_tracer_provider(provider)
    sdk = trace.get_tracer_provider().get_tracer(__name__)  # ours, unless one was set before
    _unsampled_stays_unsampled = isinstance(sdk, SdkTracer) and _parent_decides_unsampled(
        sdk.sampler
    )
    _setup_logging(settings.log_level)


def _parent_decides_unsampled(sampler: Sampler) -> bool:
    """Whether the sampler records no child of a span that is not sampled, whatever the child
    (parent-based with the default "always off" for unsampled parents, local or remote)."""
    description = sampler.get_description()
    return description.startswith("ParentBased{") and all(
        f"{parent}:{ALWAYS_OFF.get_description()}" in description
        for parent in ("remoteParentNotSampled", "localParentNotSampled")
    )


def _span_processor(kind: str, protocol: str) -> SpanProcessor | None:
    exporter: SpanExporter
    if kind == "console":
        exporter = ConsoleSpanExporter()
    elif kind != "otlp":
        return None
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
            OTLPSpanExporter as HttpExporter,
        )

        exporter = HttpExporter()
    else:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        exporter = GrpcExporter()
    _exporters.append(exporter)
    return BatchSpanProcessor(exporter)


def shutdown_telemetry(grace: float = 3.0) -> None:
    """Send the spans still buffered, waiting at most ``grace`` seconds, then stop exporting.

    Called last by each service: the receiver may be stopping too (a rolling update, ``make
    run``'s Ctrl-C), and the exporter would otherwise retry each batch for its whole timeout
    while the process should be gone."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        return
    # The SDK's force_flush ignores its timeout (it exports every buffered batch, each retried
    # for the exporter's whole timeout), so it runs aside and is cut short by the shutdown.
    flushing = threading.Thread(
        target=provider.force_flush, args=(int(grace * 1000),), name="span-flush", daemon=True
    )
    flushing.start()
    flushing.join(grace)
    for exporter in _exporters:
        exporter.shutdown()  # ends a retry in progress; what is left is dropped
    _exporters.clear()
    flushing.join(1.0)


def _setup_logging(log_level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(TraceIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s] %(message)s")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(log_level.upper())


class TraceIdFilter(logging.Filter):
    """Adds ``trace_id`` to every log record (empty outside a trace)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id = current_trace_id()
        return True


def tracer(name: str) -> trace.Tracer:
    return _Tracer(trace.get_tracer(name))


class _Tracer(trace.Tracer):
    """The SDK's tracer, minus the span nobody records. In a trace that is not sampled, with
    a sampler that follows the parent (the default; the only one when nothing exports), a new
    span is never recorded: all it would do is put a new span id, in the same trace, into the
    context passed on. So there the parent's span stays current and no span is made: the
    trace id still reaches every log line, event and broker message, and about 6 us a span are
    saved (bench/README "Round 5"). Anything else goes to the SDK as before."""

    def __init__(self, sdk: trace.Tracer) -> None:
        self._sdk = sdk

    def start_span(self, *args: Any, **kwargs: Any) -> trace.Span:
        return self._sdk.start_span(*args, **kwargs)

    def start_as_current_span(  # type: ignore[override]
        self, name: str, context: otel_context.Context | None = None, **kwargs: Any
    ) -> AbstractContextManager[trace.Span]:
        if context is None and not may_record():
            return nullcontext(trace.get_current_span())
        return self._sdk.start_as_current_span(name, context, **kwargs)


def may_record() -> bool:
    """Whether a span started now, in the current trace, could be recorded: False in a trace
    nobody samples (``_Tracer``), where what only a recorded span keeps (its links, say) need
    not be worked out."""
    if not _unsampled_stays_unsampled:
        return True
    found = trace.get_current_span().get_span_context()
    return not found.is_valid or found.trace_flags.sampled


def current_trace_id() -> str:
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else ""


def inject_context(headers: MutableMapping[str, Any]) -> None:
    propagate.inject(headers)


class _Attached:
    def __init__(self, token: object) -> None:
        self._token = token

    def detach(self) -> None:
        otel_context.detach(self._token)  # type: ignore[arg-type]


def wait_links(headers: Mapping[str, Any]) -> list[trace.Link]:
    """For the span that takes a delivery up after a wait: a link to the span that made it
    wait (the context the parked message carries), naming the wait and its end. No span
    covers the wait itself, however long it was."""
    raw = headers.get(WAIT_HEADER)
    if not raw:
        return []
    carrier = {k: v.decode() if isinstance(v, bytes) else str(v) for k, v in headers.items()}
    parked = trace.get_current_span(propagate.extract(carrier)).get_span_context()
    if not parked.is_valid:
        return []
    attributes: dict[str, str | float] = {WAIT: carrier[WAIT_HEADER]}
    until = carrier.get("x-postline-not-before")
    if until:
        attributes[WAIT_UNTIL] = float(until)
    return [trace.Link(parked, attributes)]


def sampled_traceparent(context: contextvars.Context) -> str:
    """The W3C traceparent of the span current in ``context`` if it is sampled, else ''."""
    found = context.run(trace.get_current_span).get_span_context()
    if not (found.is_valid and found.trace_flags.sampled):
        return ""
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-01"


def sampled_parents(headers: Mapping[str, Any]) -> list[trace.SpanContext]:
    """The sampled trace contexts a broker message carries: its ``traceparent`` (one item, or
    the publisher's context), or those of a batch's items (``TRACEPARENTS_HEADER``).
    Unsampled ones are left out: nothing records their spans, so nothing need be made."""
    raw = headers.get(TRACEPARENTS_HEADER) or headers.get("traceparent")
    if not raw:
        return []
    found = []
    for value in (raw.decode() if isinstance(raw, bytes) else str(raw)).split(","):
        span = trace.get_current_span(propagate.extract({"traceparent": value.strip()}))
        context = span.get_span_context()
        if context.is_valid and context.trace_flags.sampled:
            found.append(context)
    return found


class _AmqpHeaders(Getter[Mapping[str, Any]]):
    """AMQP headers as a propagator's carrier: only the headers it asks for (``traceparent``,
    ``tracestate``, ``baggage``) are read, as text, not a text copy of them all."""

    def get(self, carrier: Mapping[str, Any], key: str) -> list[str] | None:
        value = carrier.get(key)
        if value is None:
            return None
        return [value.decode() if isinstance(value, bytes) else str(value)]

    def keys(self, carrier: Mapping[str, Any]) -> list[str]:
        return list(carrier.keys())


_amqp_headers = _AmqpHeaders()


def extract_context(headers: Mapping[str, Any]) -> _Attached:
    """Make the trace of an incoming message current; call ``detach()`` when done."""
    return _Attached(otel_context.attach(propagate.extract(headers, getter=_amqp_headers)))


# A batch's items carry their trace as a W3C traceparent each and nothing else (no
# tracestate, no baggage): read and written by the W3C propagator itself, not through the
# configured composite one, for every item of every batch.
_W3C = TraceContextTextMapPropagator()


# The form ``traceparent_in`` writes (version 00, lower-case hex, nothing after the flags):
# read here directly; anything else is left to the propagator.
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_NO_TRACE_ID = "0" * 32
_NO_SPAN_ID = "0" * 16


def extract_traceparent(traceparent: str) -> _Attached:
    """Make the trace of a batch item (its ``traceparent``; '' for none) current; call
    ``detach()`` when done. The same context ``extract_context`` makes of that header, made
    without the propagator's carrier, getter and search when it is in the usual form (about
    half the time; three items a delivery in the scheduler)."""
    found = _TRACEPARENT.fullmatch(traceparent)
    if found is None or found[1] == _NO_TRACE_ID or found[2] == _NO_SPAN_ID:
        carrier = {"traceparent": traceparent} if traceparent else {}
        return _Attached(otel_context.attach(_W3C.extract(carrier)))
    trace_id, span_id, flags = found.groups()
    remote = trace.SpanContext(
        trace_id=int(trace_id, 16),
        span_id=int(span_id, 16),
        is_remote=True,
        trace_flags=trace.TraceFlags(int(flags, 16)),
    )
    context = trace.set_span_in_context(trace.NonRecordingSpan(remote), otel_context.Context())
    return _Attached(otel_context.attach(context))


def traceparent_in(context: contextvars.Context) -> str:
    """The W3C traceparent of the span current in ``context`` ('' when there is none): what
    the propagator writes, made directly."""
    found = context.run(trace.get_current_span).get_span_context()
    if not found.is_valid:
        return ""
    return f"00-{found.trace_id:032x}-{found.span_id:016x}-{found.trace_flags:02x}"


def grpc_server_interceptors() -> Sequence[grpc.aio.ServerInterceptor]:
    """For ``grpc.aio.server(interceptors=...)``: a server span per call, in the caller's
    trace (its ``traceparent`` metadata)."""
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return [aio_server_interceptor()]


def grpc_client_interceptors() -> Sequence[grpc.aio.ClientInterceptor]:
    """For ``grpc.aio.insecure_channel(..., interceptors=...)``: a client span per call, its
    context sent in the call's metadata."""
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def instrument_http(app: Any) -> None:
    """A server span per request of a FastAPI app (named after its route), in the client's
    trace when it sent ``traceparent``; probes and scraping are left out."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(
        app, excluded_urls=HTTP_UNTRACED, exclude_spans=["receive", "send"]
    )
