"""The search rules of the reports API: mandatory dates, statuses, the 100 cap and paging."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from postline.reports.search import (
    SearchError,
    deliveries_sql,
    errors_sql,
    like_pattern,
    page_of,
    parse_query,
)


def test_dates_are_mandatory_and_ordered() -> None:
    with pytest.raises(SearchError) as missing:
        parse_query({"end": "2026-11-01"}, kind="errors")
    assert missing.value.field == "start"
    with pytest.raises(SearchError) as bad:
        parse_query({"start": "2026-11-01", "end": "11/02/2026"}, kind="errors")
    assert bad.value.field == "end"
    with pytest.raises(SearchError) as order:
        parse_query({"start": "2026-11-02", "end": "2026-11-01"}, kind="errors")
    assert order.value.field == "end" and "before" in order.value.message
    q = parse_query({"start": "2026-11-01", "end": "2026-11-01"}, kind="deliveries")
    assert q.start == q.end == date(2026, 11, 1) and q.page == 1


@pytest.mark.parametrize(
    ("kind", "status", "ok"),
    [
        ("deliveries", "succeeded", True),
        ("deliveries", "bounced", False),
        ("errors", "2", True),
        ("errors", "99", True),
        ("errors", "11", False),
        ("errors", "two", False),
    ],
)
def test_status_values(kind: str, status: str, ok: bool) -> None:
    params = {"start": "2026-11-01", "end": "2026-11-01", "status": status}
    if ok:
        assert parse_query(params, kind=kind).status == status
    else:
        with pytest.raises(SearchError):
            parse_query(params, kind=kind)


def test_page_must_be_a_positive_number() -> None:
    for page in ("0", "-1", "x"):
        with pytest.raises(SearchError):
            parse_query({"start": "2026-11-01", "end": "2026-11-01", "page": page}, kind="errors")


def _rows(n: int) -> list[dict[str, object]]:
    t = datetime(2026, 11, 1, tzinfo=UTC)
    return [
        {
            "created": t,
            "status": 2,
            "envelope_from": "a@x.test",
            "recipient": f"r{i}@y.test",
            "message_id": f"m{i}",
            "header_message_id": f"<m{i}@x.test>",
            "return_path": f"bounce-d{i}@bounce.x.test",
            "subject": "s",
            "api_data": "",
            "reason": "550 5.1.1",
            "delivery_id": f"d{i}",
            "trace_id": "",
        }
        for i in range(n)
    ]


def test_at_most_100_results_10_per_page_and_a_truncated_flag() -> None:
    first = page_of(_rows(101), 1)  # the query asks for 101 rows to know there were more
    assert first["total"] == 100 and first["truncated"] is True and first["pages"] == 10
    assert len(first["results"]) == 10 and first["results"][0]["to"] == "r0@y.test"
    last = page_of(_rows(101), 10)
    assert last["results"][-1]["to"] == "r99@y.test"
    assert page_of(_rows(101), 11)["results"] == []
    small = page_of(_rows(3), 1)
    assert small["total"] == 3 and small["truncated"] is False and small["pages"] == 1
    assert list(small["results"][0]) == [
        "created", "status", "from", "to", "messageId", "returnPath", "subject", "apiData",
        "reason", "deliveryId", "traceId", "id",
    ]  # fmt: skip
    assert small["results"][0]["created"] == "2026-11-01T00:00:00.000Z"
    # messageId is the mail's Message-ID header; Postline's own message id is id
    assert small["results"][0]["messageId"] == "<m0@x.test>"
    assert small["results"][0]["id"] == "m0"


def test_error_status_is_the_error_parameter() -> None:
    q = parse_query({"start": "2026-11-01", "end": "2026-11-01", "error": "10"}, kind="errors")
    assert q.status == "10"
    with pytest.raises(SearchError) as bad:
        parse_query({"start": "2026-11-01", "end": "2026-11-01", "error": "0"}, kind="errors")
    assert bad.value.field == "error"


def test_tz_makes_dates_local_days() -> None:
    q = parse_query(
        {"start": "2026-11-01", "end": "2026-11-02", "tz": "Asia/Tokyo"}, kind="deliveries"
    )
    assert q.range.first_instant == datetime(2026, 10, 31, 15, tzinfo=UTC)
    assert q.range.end_instant == datetime(2026, 11, 2, 15, tzinfo=UTC)
    utc = parse_query({"start": "2026-11-01", "end": "2026-11-01"}, kind="deliveries")
    assert utc.range.end_instant == datetime(2026, 11, 2, tzinfo=UTC)
    with pytest.raises(SearchError) as bad:
        parse_query({"start": "2026-11-01", "end": "2026-11-01", "tz": "+09:00"}, kind="errors")
    assert bad.value.field == "tz"


def test_rows_render_in_the_tz() -> None:
    from zoneinfo import ZoneInfo

    row = page_of(_rows(1), 1, ZoneInfo("Asia/Tokyo"))["results"][0]
    assert row["created"] == "2026-11-01T09:00:00.000+09:00"


def test_the_address_is_matched_literally() -> None:
    assert like_pattern("a_b%c\\d") == "a\\_b\\%c\\\\d"
    q = parse_query(
        {"start": "2026-11-01", "end": "2026-11-01", "address": "50%_off"}, kind="errors"
    )
    _, params = errors_sql(q)
    assert params["address"] == "50\\%\\_off"


def test_final_states_filter_before_final_and_others_after() -> None:
    def sql(status: str) -> str:
        q = parse_query(
            {"start": "2026-11-01", "end": "2026-11-01", "status": status}, kind="deliveries"
        )
        return deliveries_sql(q)[0]

    # A final state is always the latest row of its delivery: safe to filter before FINAL.
    assert "PREWHERE status = {status:String}" in sql("failed")
    # queued/deferred rows may have been superseded: checked after FINAL, among candidates.
    queued = sql("queued")
    assert "PREWHERE" not in queued.split(" WHERE ")[0]
    assert "(created, delivery_id) IN (SELECT" in queued


@pytest.mark.parametrize(
    ("params", "field", "kind"),
    [
        ({"start": "2026-11-01", "end": "9999-12-31"}, "end", "date_range"),
        ({"start": "0999-01-01", "end": "2026-11-01"}, "start", "date_range"),
        ({"start": "2026-11-01", "end": "2026-11-01", "tz": "A" * 300}, "tz", "tz"),
        ({"start": "2026-11-01", "end": "2026-11-01", "tz": "../../etc/passwd"}, "tz", "tz"),
        ({"start": "2026-11-01", "end": "2026-11-01", "tz": "Asia/Nowhere"}, "tz", "tz"),
        ({"start": "２０２６-11-01", "end": "2026-11-01"}, "start", "date"),
        ({"start": "2026-11-01", "end": "2026-11-01", "page": "²"}, "page", "number"),
        ({"start": "2026-11-01", "end": "2026-11-01", "page": "9" * 5000}, "page", "number"),
        (
            {"start": "2026-11-01", "end": "2026-11-01", "address": "a" * 5000},
            "address",
            "too_long",
        ),
        ({"end": "2026-11-01"}, "start", "required"),
        ({"start": "2026-11-02", "end": "2026-11-01"}, "end", "order"),
    ],
)
def test_bad_parameters_are_named_and_never_crash(
    params: dict[str, str], field: str, kind: str
) -> None:
    with pytest.raises(SearchError) as bad:
        parse_query(params, kind="errors")
    assert (bad.value.field, bad.value.kind) == (field, kind)
    assert len(bad.value.message) < 200  # a long bad value is not echoed whole
