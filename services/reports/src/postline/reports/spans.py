"""Receiving spans over OTLP/HTTP and writing them to ClickHouse (``postline.otel_traces``).

Every service exports its spans over OTLP (``POSTLINE_OTEL_EXPORTER=otlp``); pointed here
(``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``, ``OTEL_EXPORTER_OTLP_ENDPOINT`` this listener,
``POSTLINE_OTLP_LISTEN``, as ``make run`` does), the reports service stores them in the
table a collector's ClickHouse exporter would write, so the console shows a delivery's
timeline with no tracing system beside Postline. Only the reports (and bounce) images carry
ClickHouse; the others only speak OTLP.

``POST /v1/traces`` takes an ``ExportTraceServiceRequest`` (protobuf, optionally gzip) and
answers ``200`` once its spans were written; ``400`` for a body that is not one (the exporter
does not retry it), ``415`` for another content type, ``503`` with ``Retry-After`` when
ClickHouse cannot take them (the exporter retries). Requests that arrive while an insert is in
flight are written together by the next one (group commit): five services exporting every
second make a handful of inserts, not one per request.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import zlib
from collections.abc import Iterable
from typing import Any

from clickhouse_connect.driver.client import Client
from fastapi import FastAPI, Request, Response
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from prometheus_client import Counter

from postline.common.semconv import METRIC_SPANS_RECEIVED, METRIC_SPANS_WRITE_FAILURES
from postline.reports.store import Store

logger = logging.getLogger(__name__)

TABLE = "postline.otel_traces"
COLUMNS = (
    "Timestamp",
    "TraceId",
    "SpanId",
    "ParentSpanId",
    "TraceState",
    "SpanName",
    "SpanKind",
    "ServiceName",
    "ResourceAttributes",
    "ScopeName",
    "ScopeVersion",
    "SpanAttributes",
    "Duration",
    "StatusCode",
    "StatusMessage",
    "Events.Timestamp",
    "Events.Name",
    "Events.Attributes",
    "Links.TraceId",
    "Links.SpanId",
    "Links.TraceState",
    "Links.Attributes",
)
PROTOBUF = "application/x-protobuf"
# An exporter's batch is at most 512 spans of a few KB: far below this.
MAX_BODY = 32 * 1024 * 1024
RETRY_AFTER_SECONDS = 5
# Rows written together at most (what arrived during one insert).
MAX_ROWS = 50_000

SPANS_RECEIVED = Counter(METRIC_SPANS_RECEIVED, "spans received over OTLP and written")
SPANS_WRITE_FAILURES = Counter(
    METRIC_SPANS_WRITE_FAILURES, "span inserts that failed (the exporters were told to retry)"
)


def _text(value: AnyValue) -> str:
    """An attribute value as the collector's ClickHouse exporter stores it: a string."""
    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return repr(value.double_value)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        return json.dumps([_plain(v) for v in value.array_value.values])
    if kind == "kvlist_value":
        return json.dumps({kv.key: _plain(kv.value) for kv in value.kvlist_value.values})
    return ""


def _plain(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return _text(value)
    return getattr(value, kind) if kind else None


def _attributes(values: Iterable[KeyValue]) -> dict[str, str]:
    return {kv.key: _text(kv.value) for kv in values}


def rows_of(request: ExportTraceServiceRequest) -> list[list[Any]]:
    """One ``otel_traces`` row per span, in ``COLUMNS`` order."""
    rows = []
    for resource_spans in request.resource_spans:
        resource = _attributes(resource_spans.resource.attributes)
        service = resource.get("service.name", "")
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            for span in scope_spans.spans:
                start, end = span.start_time_unix_nano, span.end_time_unix_nano
                links = span.links
                rows.append(
                    [
                        start,
                        span.trace_id.hex(),
                        span.span_id.hex(),
                        span.parent_span_id.hex(),
                        span.trace_state,
                        span.name,
                        Span.SpanKind.Name(span.kind),
                        service,
                        resource,
                        scope.name,
                        scope.version,
                        _attributes(span.attributes),
                        max(0, end - start),
                        Status.StatusCode.Name(span.status.code),
                        span.status.message,
                        [e.time_unix_nano for e in span.events],
                        [e.name for e in span.events],
                        [_attributes(e.attributes) for e in span.events],
                        [link.trace_id.hex() for link in links],
                        [_span_id(link.span_id) for link in links],
                        [link.trace_state for link in links],
                        [_attributes(link.attributes) for link in links],
                    ]
                )
    return rows


def _span_id(raw: bytes) -> str:
    """Hex, or '' for none (a link to a trace whose span is not known: all zeros)."""
    return raw.hex() if raw.strip(b"\0") else ""


class SpanWriter:
    """Writes span rows by group commit: one insert at a time, each taking what waits."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[tuple[list[list[Any]], asyncio.Future[None]]] = []
        self._writing: asyncio.Task[None] | None = None

    async def write(self, rows: list[list[Any]]) -> None:
        """Return once ``rows`` were inserted; raise what the insert raised."""
        if not rows:
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((rows, done))
        if self._writing is None or self._writing.done():
            self._writing = asyncio.create_task(self._drain())
        await done

    async def _drain(self) -> None:
        while self._waiting:
            taken: list[tuple[list[list[Any]], asyncio.Future[None]]] = []
            count = 0
            while self._waiting and (not taken or count + len(self._waiting[0][0]) <= MAX_ROWS):
                rows, done = self._waiting.pop(0)
                taken.append((rows, done))
                count += len(rows)
            batch = [row for rows, _ in taken for row in rows]

            def insert(client: Client, batch: list[list[Any]] = batch) -> None:
                client.insert(TABLE, batch, column_names=COLUMNS)

            try:
                await self.store.write(insert)
            except Exception as exc:
                SPANS_WRITE_FAILURES.inc()
                for _, done in taken:
                    if not done.done():
                        done.set_exception(exc)
                continue
            SPANS_RECEIVED.inc(len(batch))
            for _, done in taken:
                if not done.done():
                    done.set_result(None)


def _body(raw: bytes, encoding: str) -> bytes:
    if encoding == "gzip":
        return gzip.decompress(raw)
    if encoding == "deflate":
        return zlib.decompress(raw)
    if encoding in ("", "identity"):
        return raw
    raise ValueError(f"unsupported Content-Encoding {encoding!r}")


def _status(code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """An OTLP error answer: a ``google.rpc.Status``-shaped body in JSON words."""
    body = json.dumps({"code": code, "message": message}).encode()
    return Response(body, status_code=code, media_type="application/json", headers=headers)


def create_otlp_app(writer: SpanWriter) -> FastAPI:
    """The OTLP/HTTP span receiver (its own listener: it needs no credentials, so it is not
    served beside the reports API and the console)."""
    app = FastAPI(title="Postline span receiver", docs_url=None, redoc_url=None)

    @app.post("/v1/traces")
    async def traces(request: Request) -> Response:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != PROTOBUF:
            return _status(415, f"send OTLP as {PROTOBUF} (got {content_type or 'nothing'})")
        raw = await request.body()
        if len(raw) > MAX_BODY:
            return _status(413, f"an export request may carry at most {MAX_BODY} bytes")
        try:
            body = _body(raw, request.headers.get("content-encoding", "").lower())
            export = ExportTraceServiceRequest.FromString(body)
        except (ValueError, OSError, zlib.error, DecodeError) as exc:
            return _status(400, f"not an OTLP ExportTraceServiceRequest: {exc}")
        try:
            await writer.write(rows_of(export))
        except Exception as exc:
            logger.warning("spans not written, the exporter will retry: %s", exc)
            return _status(
                503, "spans could not be stored", {"Retry-After": str(RETRY_AFTER_SECONDS)}
            )
        return Response(
            ExportTraceServiceResponse().SerializeToString(), media_type=PROTOBUF, status_code=200
        )

    return app
