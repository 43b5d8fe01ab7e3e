"""Spans over OTLP/HTTP into ClickHouse, and GET /api/v1/traces/{trace_id}.

The sending side is OpenTelemetry's own OTLP/HTTP exporter (what every service uses with
``OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf``), over a real socket to the reports service's
receiver; the spans land in chdb's ``otel_traces`` and come back through the reports API.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from postline.common.policy import load_policy
from postline.common.runtime import HttpServer
from postline.common.semconv import DELIVERY_ID, SERVER
from postline.reports.http import create_app
from postline.reports.queries import ReportQueries
from postline.reports.spans import SpanWriter, create_otlp_app
from postline.reports.store import Store
from tests.conftest import DEV_POLICY
from tests.integration.reports_support import migrated
from tests.ports import free_port

AUTH = {"Authorization": "Bearer dev:dev-secret"}


class Reports:
    """The reports API and the span receiver on their own event loop thread."""

    def __init__(self, store: Store) -> None:
        self.api = f"127.0.0.1:{free_port()}"
        self.otlp = f"127.0.0.1:{free_port()}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        queries = ReportQueries(store, load_policy(DEV_POLICY))
        self.servers = [
            HttpServer(create_app(queries, ready=lambda: True), self.api),
            HttpServer(create_otlp_app(SpanWriter(store)), self.otlp),
        ]
        for server in self.servers:
            self.call(server.start())

    def call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=60)

    def close(self) -> None:
        for server in self.servers:
            self.call(server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reports]:
    store = Store(migrated(tmp_path_factory.mktemp("traces") / "ch"))
    reports = Reports(store)
    try:
        yield reports
    finally:
        reports.close()
        store.close()


def tracer_of(reports: Reports, service: str) -> trace.Tracer:
    """A service's tracer exporting straight to the receiver (each span sent as it ends)."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"postline-{service}"}))
    exporter = OTLPSpanExporter(endpoint=f"http://{reports.otlp}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer(service)


def get_trace(reports: Reports, trace_id: str, **headers: str) -> httpx.Response:
    return httpx.get(
        f"http://{reports.api}/api/v1/traces/{trace_id}", headers={**AUTH, **headers}, timeout=30
    )


def test_a_delivery_trace_over_otlp_comes_back_in_order(reports: Reports) -> None:
    ingress, scheduler = tracer_of(reports, "ingress"), tracer_of(reports, "scheduler")
    with ingress.start_as_current_span(
        "postline.ingress.smtp_transaction", attributes={SERVER: "default"}
    ) as root:
        with ingress.start_as_current_span("publish", attributes={DELIVERY_ID: "d-1"}):
            pass
    with scheduler.start_as_current_span(
        "postline.scheduler.schedule", context=trace.set_span_in_context(root)
    ) as first:
        pass
    resumed_link = trace.Link(first.get_span_context(), {"postline.wait": "retry"})
    with scheduler.start_as_current_span(
        "postline.scheduler.schedule", context=trace.set_span_in_context(root), links=[resumed_link]
    ):
        pass
    trace_id = format(root.get_span_context().trace_id, "032x")

    response = get_trace(reports, trace_id)

    assert response.status_code == 200, response.text
    spans = response.json()["spans"]
    assert [(s["service"], s["name"]) for s in spans] == [
        ("postline-ingress", "postline.ingress.smtp_transaction"),
        ("postline-ingress", "publish"),
        ("postline-scheduler", "postline.scheduler.schedule"),
        ("postline-scheduler", "postline.scheduler.schedule"),
    ]
    root_id = format(root.get_span_context().span_id, "016x")
    assert spans[0]["span_id"] == root_id and spans[0]["parent_span_id"] == ""
    assert all(s["parent_span_id"] == root_id for s in spans[1:])
    assert spans[0]["attributes"][SERVER] == "default"
    assert spans[1]["attributes"][DELIVERY_ID] == "d-1"
    assert all(s["start"] <= s["end"] and s["start"].endswith("Z") for s in spans)
    (link,) = spans[3]["links"]
    assert link == {
        "trace_id": trace_id,
        "span_id": format(first.get_span_context().span_id, "016x"),
        "attributes": {"postline.wait": "retry"},
    }
    assert not any(s["linked"] for s in spans)


def test_a_bounce_mail_linked_to_a_delivery_shows_in_its_trace(reports: Reports) -> None:
    ingress, bounce = tracer_of(reports, "ingress"), tracer_of(reports, "bounce")
    with ingress.start_as_current_span("submit", attributes={SERVER: "default"}) as submitted:
        pass
    delivery_trace = submitted.get_span_context().trace_id
    # Days later the bounce service knows only the delivery's trace id (from its record).
    known = trace.SpanContext(delivery_trace, 0, is_remote=True)
    with bounce.start_as_current_span(
        "postline.bounce.mail", links=[trace.Link(known, {DELIVERY_ID: "d-2"})]
    ):
        pass

    spans = get_trace(reports, format(delivery_trace, "032x")).json()["spans"]

    assert [(s["service"], s["linked"]) for s in spans] == [
        ("postline-ingress", False),
        ("postline-bounce", True),
    ]
    assert spans[1]["links"][0]["attributes"] == {DELIVERY_ID: "d-2"}
    assert spans[1]["links"][0]["span_id"] == ""


def test_a_trace_is_only_shown_to_its_own_server(reports: Reports) -> None:
    tracer = tracer_of(reports, "ingress")
    with tracer.start_as_current_span("submit", attributes={SERVER: "elsewhere"}) as span:
        pass
    trace_id = format(span.get_span_context().trace_id, "032x")
    answer = get_trace(reports, trace_id)
    assert answer.status_code == 404
    assert answer.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("trace_id", ["xyz", "0" * 32, "a" * 33])
def test_a_malformed_trace_id_is_a_400(reports: Reports, trace_id: str) -> None:
    answer = get_trace(reports, trace_id)
    assert answer.status_code == 400
    assert answer.json()["error"]["field"] == "trace_id"


def test_an_unknown_trace_is_a_404(reports: Reports) -> None:
    assert get_trace(reports, "ab" * 16).status_code == 404


def test_the_receiver_answers_in_otlp_terms(reports: Reports) -> None:
    url = f"http://{reports.otlp}/v1/traces"
    protobuf = {"Content-Type": "application/x-protobuf"}
    assert (
        httpx.post(url, content=b"{}", headers={"Content-Type": "application/json"}).status_code
        == 415
    )
    refused = httpx.post(url, content=b"\xff\xff\xff", headers=protobuf)
    assert refused.status_code == 400 and "ExportTraceServiceRequest" in refused.json()["message"]
    empty = gzip.compress(b"")
    accepted = httpx.post(url, content=empty, headers={**protobuf, "Content-Encoding": "gzip"})
    assert accepted.status_code == 200
    assert accepted.headers["content-type"] == "application/x-protobuf"
    assert (
        httpx.post(url, content=b"x", headers={**protobuf, "Content-Encoding": "br"}).status_code
        == 400
    )
