"""Event envelopes for ClickHouse, poison checks, insert tokens, back-off, CSV lines."""

from __future__ import annotations

import csv
import io

import pytest
from google.protobuf.message import DecodeError

from postline.common.timeutil import to_timestamp
from postline.reports.batching import Backoff
from postline.reports.csv_export import csv_lines
from postline.reports.grpc_api import peer_ip, search_params
from postline.reports.ingest import (
    PoisonEvents,
    check,
    envelope,
    envelope_rows,
    insert_token,
    prepare,
    protobuf_schema,
    read_varint,
    varint,
)
from postline.v1 import events_pb2, reports_pb2


def test_varints_round_trip() -> None:
    for value in (0, 1, 127, 128, 300, 16_383, 16_384, 2**31, 2**40):
        encoded = varint(value)
        assert read_varint(encoded + b"rest", 0) == (value, len(encoded))
    with pytest.raises(DecodeError):
        read_varint(b"\x80\x80", 0)


def events(n: int, prefix: str = "e") -> list[events_pb2.DeliveryEvent]:
    return [
        events_pb2.DeliveryEvent(
            event_id=f"{prefix}{i}", delivery_id="d", status=1, at=to_timestamp(1.79e9 + i)
        )
        for i in range(n)
    ]


def test_batches_and_single_events_make_one_envelope() -> None:
    batch = events_pb2.DeliveryEvents(events=events(3, "b")).SerializeToString()
    single = events(1, "s")[0].SerializeToString()
    assert envelope_rows(batch) == 3
    data = envelope([(True, batch), (False, single), (True, batch)])
    length, start = read_varint(data, 0)
    assert length == len(data) - start
    merged = events_pb2.DeliveryEvents.FromString(data[start:])
    assert [e.event_id for e in merged.events] == ["b0", "b1", "b2", "s0", "b0", "b1", "b2"]


def test_prepare_groups_by_kind_and_counts_events() -> None:
    error = events_pb2.ErrorClassified(event_id="x", created=to_timestamp(1.79e9))
    prepared = prepare(
        [
            (
                "postline.v1.DeliveryEvents",
                events_pb2.DeliveryEvents(events=events(4)).SerializeToString(),
            ),
            ("postline.v1.DeliveryEvent", events(1)[0].SerializeToString()),
            ("postline.v1.ErrorClassified", error.SerializeToString()),
        ]
    )
    assert [(kind.name, count) for kind, _, count in prepared.inserts] == [
        ("delivery", 5), ("error", 1),
    ]  # fmt: skip
    assert prepared.events == 6


def test_prepare_refuses_unknown_types_and_broken_batches() -> None:
    good = events_pb2.DeliveryEvents(events=events(2)).SerializeToString()
    with pytest.raises(PoisonEvents) as refused:
        prepare(
            [
                ("postline.v1.DeliveryEvents", good),
                ("postline.v1.Accepted", b""),
                ("postline.v1.DeliveryEvents", good[:-2]),
                ("postline.v1.ErrorEvents", b"\x12\x00"),  # field 2: not a batch
            ]
        )
    assert sorted(refused.value.reasons) == [1, 2, 3]


def test_the_schema_sent_to_clickhouse_follows_the_contract() -> None:
    for message in (events_pb2.DeliveryEvent, events_pb2.ErrorClassified):
        schema = protobuf_schema(message.DESCRIPTOR)
        for field in message.DESCRIPTOR.fields:
            assert f" {field.name} = {field.number};" in schema
        assert "import" not in schema
    assert "  Timestamp at = 5;" in protobuf_schema(events_pb2.DeliveryEvent.DESCRIPTOR)


def test_events_no_row_can_be_made_of_are_poison() -> None:
    at = to_timestamp(1.79e9)
    check(events_pb2.DeliveryEvent(event_id="e", delivery_id="d", status=1, at=at))
    check(events_pb2.ErrorClassified(event_id="x", created=at))
    for bad in (
        events_pb2.DeliveryEvent(delivery_id="d", status=1, at=at),
        events_pb2.DeliveryEvent(event_id="e", delivery_id="d", at=at),
        events_pb2.DeliveryEvent(event_id="e", status=1, at=at),
        events_pb2.DeliveryEvent(event_id="e", delivery_id="d", status=1),
        events_pb2.ErrorClassified(),
        events_pb2.ErrorClassified(event_id="x"),
    ):
        with pytest.raises(DecodeError):
            check(bad)


def test_an_insert_token_is_the_same_for_the_same_bytes() -> None:
    assert insert_token("t", b"ab") == insert_token("t", b"ab")
    assert insert_token("t", b"ab") != insert_token("t", b"ba")
    assert insert_token("t", b"a") != insert_token("u", b"a")


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
