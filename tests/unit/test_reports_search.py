"""The search rules of the reports API: mandatory dates, statuses, the 100 cap and paging."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from postline.reports.search import SearchError, page_of, parse_query


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
            "return_path": "",
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
        "reason", "deliveryId", "traceId",
    ]  # fmt: skip
    assert small["results"][0]["created"] == "2026-11-01T00:00:00.000Z"
