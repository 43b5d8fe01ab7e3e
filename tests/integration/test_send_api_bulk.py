"""POST /api/v1/send/bulk: one template, many recipients, one message each."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.integration.send_api_support import (
    b64,
    bearer,
    harness,
    inbound_count,
    parsed,
    take_deliveries,
    take_events,
    text_of,
)

BULK = "/api/v1/send/bulk"


def bulk(recipients: list[dict[str, Any]], **changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "from": "news@example.test",
        "subject": "Hello {{name}}",
        "text": "Dear {{name}}, your code is {{code}}.",
        "html": "<p>Dear {{ name }}, your code is <b>{{code}}</b>.</p>",
        "recipients": recipients,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


def person(i: int) -> dict[str, Any]:
    return {"to": f"user{i}@d{i % 7}.test", "substitutions": {"name": f"User {i}", "code": str(i)}}


async def test_thousand_recipients_in_one_call(amqp_url: str) -> None:
    recipients = [person(i) for i in range(1000)]
    async with harness(amqp_url) as h:
        started = time.monotonic()
        response = await h.client.post(BULK, json=bulk(recipients), headers=bearer())
        took = time.monotonic() - started
    assert response.status_code == 202, response.text
    messages = response.json()["messages"]
    assert len(messages) == 1000
    assert [m["deliveries"][0]["recipient"] for m in messages] == [r["to"] for r in recipients]
    assert len({m["message_id"] for m in messages}) == 1000
    assert took < 60, f"1,000 recipients took {took:.1f}s"

    assert await inbound_count(amqp_url) == 1000  # summed over the scheduler shards
    by_id = {d.delivery_id: d for d in await take_deliveries(amqp_url)}
    for i in (0, 1, 499, 999):
        delivery = by_id[messages[i]["deliveries"][0]["delivery_id"]]
        assert delivery.recipient == recipients[i]["to"]
        assert delivery.subject == f"Hello User {i}"
        mail = parsed(delivery.content)
        assert mail["To"] == recipients[i]["to"]
        plain, html = mail.iter_parts()
        assert text_of(plain) == f"Dear User {i}, your code is {i}.\n"
        assert text_of(html) == f"<p>Dear User {i}, your code is <b>{i}</b>.</p>\n"
    assert len(await take_events(amqp_url)) == 1000  # a queued event each


async def test_values_are_escaped_in_html_only(amqp_url: str) -> None:
    recipient = {"to": "a@a.test", "substitutions": {"name": "Tom & <Jerry>", "code": "1"}}
    async with harness(amqp_url) as h:
        response = await h.client.post(BULK, json=bulk([recipient]), headers=bearer())
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    mail = parsed(delivery.content)
    plain, html = mail.iter_parts()
    assert mail["Subject"] == "Hello Tom & <Jerry>"
    assert "Dear Tom & <Jerry>," in text_of(plain)
    assert "Dear Tom &amp; &lt;Jerry&gt;," in text_of(html)


async def test_template_parts_reach_every_message(amqp_url: str) -> None:
    recipients = [
        {"to": "a@a.test", "substitutions": {"name": "A", "code": "1"}, "api_data": "ref-a"},
        {"to": "b@b.test", "substitutions": {"name": "B", "code": "2"}},
    ]
    body = bulk(
        recipients,
        headers={"X-Category": "campaign"},
        api_data="campaign-7",
        attachments=[{"filename": "a.txt", "content_type": "text/plain", "content": b64("hi")}],
    )
    async with harness(amqp_url) as h:
        response = await h.client.post(BULK, json=body, headers=bearer())
    assert response.status_code == 202, response.text
    deliveries = {d.recipient: d for d in await take_deliveries(amqp_url)}
    assert deliveries["a@a.test"].api_data == "ref-a"  # the recipient's own
    assert deliveries["b@b.test"].api_data == "campaign-7"  # else the template's
    for delivery in deliveries.values():
        mail = parsed(delivery.content)
        assert mail["X-Category"] == "campaign"
        assert [p.get_filename() for p in mail.iter_attachments()] == ["a.txt"]


async def test_over_the_memory_budget_messages_are_composed_again(amqp_url: str) -> None:
    recipients = [person(i) for i in range(20)]
    async with harness(amqp_url) as h:
        h.api.bulk_memory_budget = 2000  # keeps about one message
        response = await h.client.post(BULK, json=bulk(recipients), headers=bearer())
    assert response.status_code == 202, response.text
    deliveries = {d.recipient: d for d in await take_deliveries(amqp_url)}
    assert len(deliveries) == 20
    assert deliveries["user19@d5.test"].subject == "Hello User 19"


async def test_idempotent_bulk_is_sent_once(amqp_url: str) -> None:
    body = bulk([person(i) for i in range(3)])
    headers = {**bearer(), "Idempotency-Key": "bulk-1"}
    async with harness(amqp_url) as h:
        first = await h.client.post(BULK, json=body, headers=headers)
        again = await h.client.post(BULK, json=body, headers=headers)
        as_send = await h.client.post(
            "/api/v1/send",
            json={"from": "a@b.test", "to": ["c@d.test"], "text": "x"},
            headers=headers,
        )
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert as_send.status_code == 422  # a key names one request, whatever the endpoint
    assert await inbound_count(amqp_url) == 3


async def test_bulk_broker_unavailable_is_503() -> None:
    async with harness() as h:
        response = await h.client.post(BULK, json=bulk([person(1)]), headers=bearer())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


async def test_each_bulk_recipient_has_its_own_dsn_request(amqp_url: str) -> None:
    recipients = [
        person(0) | {"notify": ["SUCCESS"], "orcpt": "rfc822;old0@d0.test"},
        person(1),
    ]
    body = bulk(recipients, notify=["FAILURE"], ret="HDRS", envid="campaign-7")
    async with harness(amqp_url) as h:
        response = await h.client.post(BULK, json=body, headers=bearer())
    assert response.status_code == 202, response.text
    by_recipient = {d.recipient: d.dsn for d in await take_deliveries(amqp_url)}
    first, second = by_recipient["user0@d0.test"], by_recipient["user1@d1.test"]
    assert (first.notify_success, first.notify_failure) == (True, False)
    assert first.original_recipient == "rfc822;old0@d0.test"
    assert (second.notify_success, second.notify_failure) == (False, True)  # the template's
    assert {first.envelope_id, second.envelope_id} == {"campaign-7"}
    assert first.ret == second.ret == 2  # HDRS


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        (
            bulk([person(0), {"to": "bad@", "substitutions": {}}]),
            422,
            "invalid_address",
            "recipients[1].to",
        ),
        (
            bulk([person(0), person(1), {"to": "c@c.test", "substitutions": {"name": "C"}}]),
            422,
            "missing_substitution",
            "recipients[2].substitutions.code",
        ),
        (
            bulk([{"to": "a@a.test", "substitutions": {"name": "x\r\nBcc: y", "code": "1"}}]),
            422,
            "invalid_field",
            "recipients[0].substitutions.name",
        ),
        (bulk([person(0) | {"api_data": "a\nb"}]), 422, "invalid_field", "recipients[0].api_data"),
        (
            bulk([person(0), person(1) | {"notify": ["NEVER", "DELAY"]}]),
            422,
            "invalid_field",
            "recipients[1].notify",
        ),
        (bulk([person(0) | {"orcpt": "rfc822;"}]), 422, "invalid_field", "recipients[0].orcpt"),
        (bulk([]), 422, "missing_field", "recipients"),
        (bulk([{"substitutions": {}}]), 422, "missing_field", "recipients[0].to"),
        (
            {k: v for k, v in bulk([]).items() if k != "recipients"},
            422,
            "missing_field",
            "recipients",
        ),
        (bulk([person(0)], text=None, html=None), 422, "missing_body", "text"),
        (bulk([person(0)], **{"from": "x"}), 422, "invalid_address", "from"),
        (bulk([person(0)], raw=b64("From: a@b.test\r\n\r\nx")), 422, "invalid_field", "raw"),
        (bulk([person(0)], server="campaigns"), 403, "server_not_allowed", "server"),
        (
            bulk([person(0)], attachments=[{"filename": "a", "content": "!"}]),
            422,
            "invalid_base64",
            "attachments[0].content",
        ),
        (
            bulk([person(0)], attachments=[{"filename": "a", "content": b64(b"x" * 70_000)}]),
            413,
            "message_too_large",
            "attachments",
        ),
        (
            bulk([person(0), person(1) | {"substitutions": {"name": "n" * 70_000, "code": "2"}}]),
            413,
            "message_too_large",
            "recipients[1]",
        ),
    ],
)
async def test_invalid_bulk_requests_send_nothing(
    body: dict[str, Any], status: int, code: str, field: str
) -> None:
    async with harness() as h:  # not connected: anything published would make it a 503
        response = await h.client.post(BULK, json=body, headers=bearer())
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)


async def test_more_than_ten_thousand_recipients_is_422() -> None:
    recipients = [{"to": f"u{i}@a.test"} for i in range(10_001)]
    async with harness() as h:
        response = await h.client.post(
            BULK, json=bulk(recipients, subject="hi", text="hi", html=None), headers=bearer()
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "too_many_recipients"
    assert response.json()["error"]["field"] == "recipients"
