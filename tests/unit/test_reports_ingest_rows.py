"""Events to ClickHouse columns, poison checks, batch tokens, back-off, CSV lines."""

from __future__ import annotations

import csv
import io

import pytest

from postline.common.broker.consumer import PoisonMessage
from postline.common.timeutil import to_timestamp
from postline.reports.batching import Backoff
from postline.reports.csv_export import csv_lines
from postline.reports.grpc_api import peer_ip, search_params
from postline.reports.ingest import (
    DELIVERY_EVENT_COLUMNS,
    ERROR_COLUMNS,
    batch_token,
    check,
    delivery_columns,
    error_columns,
)
from postline.v1 import events_pb2, reports_pb2


def test_delivery_event_columns() -> None:
    event = events_pb2.DeliveryEvent(
        event_id="e1",
        delivery_id="d1",
        status=events_pb2.DELIVERY_STATUS_DEFERRED,
        at=to_timestamp(1_790_000_000.1234),
        accepted_at=to_timestamp(1_790_000_000.0),
        recipient="a@x.test",
        reply_code=451,
        next_attempt_at=to_timestamp(1_790_000_600.0),
    )
    plain = events_pb2.DeliveryEvent(
        event_id="e2", delivery_id="d1", status=events_pb2.DELIVERY_STATUS_QUEUED
    )
    columns = dict(zip(DELIVERY_EVENT_COLUMNS, delivery_columns([event, plain]), strict=True))
    assert columns["status"] == ["deferred", "queued"]
    assert columns["at"] == [1_790_000_000_123, 0]  # epoch milliseconds
    assert columns["next_attempt_at"] == [1_790_000_600_000, None]
    assert columns["reply_code"] == [451, 0] and columns["recipient"] == ["a@x.test", ""]


def test_error_columns() -> None:
    error = events_pb2.ErrorClassified(
        event_id="x1",
        status=events_pb2.ERROR_STATUS_OVER_CAPACITY,
        to="a@x.test",
        source=events_pb2.ERROR_SOURCE_BOUNCE_MAIL,
        permanent=True,
        created=to_timestamp(1_790_000_000.5),
        **{"from": "app@example.test"},
    )
    columns = dict(zip(ERROR_COLUMNS, error_columns([error]), strict=True))
    assert columns["envelope_from"] == ["app@example.test"]
    assert columns["recipient"] == ["a@x.test"]
    assert columns["status"] == [5] and columns["source"] == ["bounce_mail"]
    assert columns["created"] == [1_790_000_000_500] and columns["permanent"] == [True]


def test_events_no_row_can_be_made_of_are_poison() -> None:
    check(events_pb2.DeliveryEvent(event_id="e", delivery_id="d", status=1))
    for bad in (
        events_pb2.DeliveryEvent(delivery_id="d", status=1),
        events_pb2.DeliveryEvent(event_id="e", delivery_id="d"),
        events_pb2.DeliveryEvent(event_id="e", status=1),
        events_pb2.ErrorClassified(),
    ):
        with pytest.raises(PoisonMessage):
            check(bad)


def test_batch_token_is_the_same_for_the_same_batch() -> None:
    assert batch_token("t", ["a", "b"]) == batch_token("t", ["a", "b"])
    assert batch_token("t", ["a", "b"]) != batch_token("t", ["b", "a"])
    assert batch_token("t", ["ab"]) != batch_token("t", ["a", "b"])
    assert batch_token("t", ["a"]) != batch_token("u", ["a"])


def test_backoff_grows_to_its_maximum() -> None:
    backoff = Backoff(first=0.5, factor=2, maximum=3)
    assert [backoff.delay(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


def test_csv_lines_quote_only_what_needs_it() -> None:
    text = csv_lines([["a,b", 'say "hi"', "two\nlines", "plain", 2, "日本語"]])
    assert text == '"a,b","say ""hi""","two\nlines",plain,2,日本語\n'
    assert next(csv.reader(io.StringIO(text, newline=""))) == [
        "a,b", 'say "hi"', "two\nlines", "plain", "2", "日本語",
    ]  # fmt: skip


def test_grpc_request_to_parameters() -> None:
    assert peer_ip("ipv4:127.0.0.1:5000") == "127.0.0.1"
    assert peer_ip("ipv6:[::1]:5000") == "::1"
    assert peer_ip("unix:/tmp/socket") == ""
    request = reports_pb2.SearchRequest(start="2026-11-01", end="2026-11-02", page=3, tz="UTC")
    assert search_params(request) == {
        "start": "2026-11-01", "end": "2026-11-02", "page": "3", "tz": "UTC",
    }  # fmt: skip
