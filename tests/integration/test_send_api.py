"""POST /api/v1/send over the in-process app, publishing to a real RabbitMQ vhost."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from postline.common.broker.topology import inbound_queue, shard_for, urgent_queue
from postline.ingress.api.http_errors import BodyLimit
from postline.v1 import delivery_pb2, events_pb2
from tests.integration.send_api_support import (
    MAX_MESSAGE_SIZE,
    MAX_RECIPIENTS,
    OTHER_USER,
    REMOTE_USER,
    SECRET,
    SHARDS,
    USER,
    b64,
    bearer,
    harness,
    inbound_count,
    message,
    parsed,
    take_deliveries,
    take_deliveries_from,
    take_events,
    text_of,
)

SEND = "/api/v1/send"


async def _send(client: httpx.AsyncClient, body: dict[str, Any], **headers: str) -> httpx.Response:
    return await client.post(SEND, json=body, headers={**bearer(), **headers})


# -- what a send produces ----------------------------------------------------------------------


async def test_text_message_gives_one_delivery_per_recipient(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(to=["alice@a.test", "bob@b.test"]))
    assert response.status_code == 202, response.text
    answer = response.json()
    assert [d["recipient"] for d in answer["deliveries"]] == ["alice@a.test", "bob@b.test"]
    deliveries = sorted(await take_deliveries(amqp_url), key=lambda d: d.recipient)
    assert [d.delivery_id for d in deliveries] == [d["delivery_id"] for d in answer["deliveries"]]
    assert {d.message_id for d in deliveries} == {answer["message_id"]}
    first = deliveries[0]
    assert (first.server, first.api_user, first.envelope_from) == (
        "default",
        USER,
        "shop@example.test",
    )
    assert first.client_ip == "127.0.0.1"
    mail = parsed(first.content)
    assert mail["From"] == "shop@example.test"
    assert mail["To"] == "alice@a.test, bob@b.test"
    assert mail["Subject"] == "Your order"
    assert mail["Date"] and mail["Message-ID"].endswith("@ingress.test>")
    assert first.header_message_id == mail["Message-ID"]
    assert mail.get_content_type() == "text/plain"
    assert mail.get_content() == "Hello Alice.\n"
    assert first.content.count(b"\r\n") == first.content.count(b"\n")  # CRLF only


async def test_a_high_priority_delivery_takes_its_shards_urgent_queue(amqp_url: str) -> None:
    """The policy's priority rules pick the door: high priority goes to the urgent queue, so it
    never waits behind the inbound queue's backlog; the rest to the inbound queue."""
    async with harness(amqp_url) as h:
        urgent = await _send(h.client, message(headers={"X-Category": "receipt"}))
        normal = await _send(h.client, message(headers={"X-Category": "newsletter"}))
    assert urgent.status_code == normal.status_code == 202
    shard = shard_for("a.test", SHARDS)
    in_urgent = await take_deliveries_from(amqp_url, urgent_queue(shard))
    in_inbound = await take_deliveries_from(amqp_url, inbound_queue(shard))
    assert [d.delivery_id for d in in_urgent] == [urgent.json()["deliveries"][0]["delivery_id"]]
    assert [d.delivery_id for d in in_inbound] == [normal.json()["deliveries"][0]["delivery_id"]]


async def test_html_only_message(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(text=None, html="<p>Hello</p>"))
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    mail = parsed(delivery.content)
    assert mail.get_content_type() == "text/html"
    assert mail.get_content() == "<p>Hello</p>\n"


async def test_text_and_html_make_an_alternative(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(html="<p>Hello Alice.</p>"))
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    mail = parsed(delivery.content)
    assert mail.get_content_type() == "multipart/alternative"
    parts = [p.get_content_type() for p in mail.iter_parts()]
    assert parts == ["text/plain", "text/html"]  # richest last (RFC 2046 5.1.4)


async def test_attachments_make_a_mixed_message(amqp_url: str) -> None:
    pdf = bytes(range(256)) * 8
    attachments = [
        {"filename": "invoice.pdf", "content_type": "application/pdf", "content": b64(pdf)},
        {"filename": "notes ü.txt", "content_type": "text/plain", "content": b64("notes\n")},
    ]
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(html="<p>Hi</p>", attachments=attachments))
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    mail = parsed(delivery.content)
    assert mail.get_content_type() == "multipart/mixed"
    body, *files = list(mail.iter_parts())
    assert body.get_content_type() == "multipart/alternative"
    assert [(f.get_filename(), f.get_content_type()) for f in files] == [
        ("invoice.pdf", "application/pdf"),
        ("notes ü.txt", "text/plain"),
    ]
    assert files[0].get_content() == pdf


async def test_custom_headers_and_api_data(amqp_url: str) -> None:
    headers = {"X-Category": "receipt", "Reply-To": "Support <help@example.test>"}
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(headers=headers, api_data="order-4711"))
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    mail = parsed(delivery.content)
    assert mail["X-Category"] == "receipt"
    assert mail["Reply-To"] == "Support <help@example.test>"
    assert mail["X-Api-Data"] == "order-4711"
    assert delivery.api_data == "order-4711"
    assert {h.name: h.value for h in delivery.headers}["X-Category"] == "receipt"


async def test_a_given_message_id_is_kept(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(headers={"Message-ID": "<mine@example.test>"}))
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    assert parsed(delivery.content).get_all("Message-ID") == ["<mine@example.test>"]


async def test_utf8_subject_body_and_sender_name(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(
            h.client,
            message(
                from_name="Bäckerei Müller",
                subject="Grüße – 注文",
                text="Schöne Grüße 🍞",
                api_data="注文-1",
            ),
        )
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    assert delivery.content.isascii()  # RFC 2047 / 2045: no 8BITMIME or SMTPUTF8 needed
    mail = parsed(delivery.content)
    assert mail["Subject"] == "Grüße – 注文"
    assert mail["From"].addresses[0].display_name == "Bäckerei Müller"
    assert mail["From"].addresses[0].addr_spec == "shop@example.test"
    assert text_of(mail) == "Schöne Grüße 🍞\n"
    # What reports show comes from the decoded headers (RFC 2047).
    assert (delivery.subject, delivery.api_data) == ("Grüße – 注文", "注文-1")


async def test_envelope_from_differs_from_header_from(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(envelope_from="bounces@example.test"))
    assert response.status_code == 202, response.text
    (delivery,) = await take_deliveries(amqp_url)
    assert delivery.envelope_from == "bounces@example.test"
    assert parsed(delivery.content)["From"] == "shop@example.test"


async def test_raw_message_is_sent_unchanged(amqp_url: str) -> None:
    raw = b"From: app@example.test\r\nTo: x@a.test\r\nSubject: raw\r\n\r\nAs is.\r\n"
    body = {"raw": b64(raw), "envelope_from": "app@example.test", "to": ["x@a.test", "y@b.test"]}
    async with harness(amqp_url) as h:
        response = await _send(h.client, body)
    assert response.status_code == 202, response.text
    deliveries = await take_deliveries(amqp_url)
    assert sorted(d.recipient for d in deliveries) == ["x@a.test", "y@b.test"]
    for delivery in deliveries:
        assert delivery.envelope_from == "app@example.test"
        # submit adds the Message-ID a raw message lacks, in front; the rest is untouched.
        assert delivery.content.startswith(b"Message-ID: <")
        assert delivery.content.endswith(raw)


async def test_relaxed_addresses_are_quoted_when_sent(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(h.client, message(to=["irregular..pattern@a.test"]))
    assert response.status_code == 202, response.text
    assert response.json()["deliveries"][0]["recipient"] == '"irregular..pattern"@a.test'
    (delivery,) = await take_deliveries(amqp_url)
    assert b'\r\nTo: "irregular..pattern"@a.test\r\n' in delivery.content


async def test_dsn_fields_are_carried_on_each_delivery(amqp_url: str) -> None:
    body = message(
        to=["alice@a.test", "bob@b.test"],
        ret="FULL",
        envid="order-4711",
        notify=["FAILURE"],
        recipient_options={
            "Alice@a.test": {"notify": ["SUCCESS", "DELAY"], "orcpt": "alice@old.test"}
        },
    )
    async with harness(amqp_url) as h:
        response = await _send(h.client, body)
        plain = await _send(h.client, message(to=["carol@a.test"]))
    assert response.status_code == plain.status_code == 202, response.text
    by_recipient = {d.recipient: d for d in await take_deliveries(amqp_url)}
    alice, bob = by_recipient["alice@a.test"].dsn, by_recipient["bob@b.test"].dsn
    assert (alice.notify_success, alice.notify_delay, alice.notify_failure) == (True, True, False)
    assert alice.original_recipient == "rfc822;alice@old.test"
    assert (bob.notify_given, bob.notify_failure, bob.notify_success) == (True, True, False)
    assert not bob.original_recipient
    for request in (alice, bob):
        assert request.ret == delivery_pb2.DSN_RETURN_FULL
        assert request.envelope_id == "order-4711"
    assert not by_recipient["carol@a.test"].HasField("dsn")  # nothing asked


async def test_queued_event_for_every_delivery(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await _send(
            h.client, message(to=["a@a.test", "b@b.test", "c@c.test"], api_data="ref-1")
        )
    assert response.status_code == 202, response.text
    answer = response.json()
    events = await take_events(amqp_url)
    assert sorted(e.delivery_id for e in events) == sorted(
        d["delivery_id"] for d in answer["deliveries"]
    )
    for event in events:
        assert event.status == events_pb2.DELIVERY_STATUS_QUEUED
        assert event.message_id == answer["message_id"]
        assert (event.server, event.api_user, event.api_data) == ("default", USER, "ref-1")
        assert event.subject == "Your order"


# -- who may send ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer dev:wrong-secret",
        "Bearer nobody:dev-secret",
        "Bearer dev",
        "Digest abc",
        "Basic !!!notbase64",
    ],
)
async def test_bad_or_missing_credentials_are_401(authorization: str | None) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    async with harness() as h:
        response = await h.client.post(SEND, json=message(), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")


async def test_basic_auth_is_accepted(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        response = await h.client.post(
            SEND, json=message(), headers={"Authorization": f"Basic {b64(f'{USER}:{SECRET}')}"}
        )
    assert response.status_code == 202, response.text


async def test_client_address_outside_allowed_ips_is_403(amqp_url: str) -> None:
    async with harness(client_ip="198.51.100.7") as h:
        response = await _send(h.client, message())
        wrong_secret = await h.client.post(SEND, json=message(), headers=bearer(secret="wrong"))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ip_not_allowed"
    assert wrong_secret.status_code == 401  # no hint about the address without the secret
    async with harness() as h:
        remote = await h.client.post(SEND, json=message(), headers=bearer(REMOTE_USER))
    assert remote.status_code == 403
    async with harness(amqp_url, client_ip="192.0.2.10") as h:
        remote = await h.client.post(SEND, json=message(), headers=bearer(REMOTE_USER))
    assert remote.status_code == 202, remote.text


async def test_another_users_server_is_403_and_an_unknown_one_422(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        other = await _send(h.client, message(server="campaigns"))
        unknown = await _send(h.client, message(server="nosuch"))
        own = await _send(h.client, message(server="default"))
    assert other.status_code == 403
    assert other.json()["error"] | {"message": ""} == {
        "code": "server_not_allowed",
        "message": "",
        "field": "server",
    }
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_server"
    assert own.status_code == 202


# -- what is refused ---------------------------------------------------------------------------

RAW = b64("From: a@example.test\r\n\r\nHi\r\n")


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (message(to=["ok@a.test", "bad@"]), "invalid_address", "to[1]"),
        (message(to=["ok@a.test", "no-at-sign"]), "invalid_address", "to[1]"),
        (message(**{"from": "shop@@example.test"}), "invalid_address", "from"),
        (message(envelope_from="x@-bad.test"), "invalid_address", "envelope_from"),
        (message(to=None), "missing_field", "to"),
        (message(to=[]), "missing_field", "to"),
        (message(**{"from": None}), "missing_field", "from"),
        (message(text=None), "missing_body", "text"),
        (message(text="", html=""), "missing_body", "text"),
        (message(to="alice@a.test"), "invalid_field", "to"),
        (message(to=["alice@a.test", 7]), "invalid_field", "to[1]"),
        (message(txt="typo"), "invalid_field", "txt"),
        (message(subject="two\r\nBcc: lines"), "invalid_field", "subject"),
        (message(api_data="a\nb"), "invalid_field", "api_data"),
        (
            message(to=[f"r{i}@a.test" for i in range(MAX_RECIPIENTS + 1)]),
            "too_many_recipients",
            "to",
        ),
        (message(to=["a@a.test", "A@A.TEST"]), "duplicate_recipient", "to[1]"),
        (message(headers={"X-Tag": "a\r\nBcc: evil@x.test"}), "invalid_header", "headers.X-Tag"),
        (message(headers={"X Tag": "v"}), "invalid_header", "headers['X Tag']"),
        (message(headers={"From": "boss@example.test"}), "reserved_header", "headers.From"),
        (message(headers={"content-type": "text/x"}), "reserved_header", "headers.content-type"),
        (message(headers={"X-Api-Data": "x"}), "reserved_header", "headers.X-Api-Data"),
        (message(headers={"Reply-To": "not an address"}), "invalid_header", "headers.Reply-To"),
        (message(headers={"X-A": "1", "x-a": "2"}), "invalid_header", "headers.x-a"),
        (
            message(attachments=[{"filename": "a.bin", "content": "%%%not base64"}]),
            "invalid_base64",
            "attachments[0].content",
        ),
        (
            message(attachments=[{"filename": "a", "content_type": "pdf", "content": "AA=="}]),
            "invalid_field",
            "attachments[0].content_type",
        ),
        (message(attachments=[{"content": "AA=="}]), "missing_field", "attachments[0].filename"),
        (
            {"raw": "@@@", "envelope_from": "a@example.test", "to": ["x@a.test"]},
            "invalid_base64",
            "raw",
        ),
        (
            {"raw": b64("no header"), "envelope_from": "a@example.test", "to": ["x@a.test"]},
            "invalid_raw_message",
            "raw",
        ),
        (message(raw=RAW, envelope_from="a@example.test"), "conflicting_field", "from"),
        (
            {"raw": RAW, "to": ["x@a.test"], "envelope_from": "a@example.test", "html": "x"},
            "conflicting_field",
            "html",
        ),
        ({"raw": RAW, "to": ["x@a.test"]}, "missing_field", "envelope_from"),
        (message(ret="BODY"), "invalid_field", "ret"),
        (message(envid="caf\u00e9"), "invalid_field", "envid"),
        (message(envid="x" * 101), "invalid_field", "envid"),
        (message(notify=["NEVER", "SUCCESS"]), "invalid_field", "notify"),
        (message(notify=["SOMETIMES"]), "invalid_field", "notify[0]"),
        (message(notify=[]), "invalid_field", "notify"),
        (
            message(recipient_options={"bob@b.test": {"notify": ["SUCCESS"]}}),
            "invalid_field",
            "recipient_options['bob@b.test']",
        ),
        (
            message(recipient_options={"alice@a.test": {"notify": ["DELAY", "DELAY"]}}),
            "invalid_field",
            "recipient_options['alice@a.test'].notify",
        ),
        (
            message(recipient_options={"alice@a.test": {"orcpt": "rfc 822;x@a.test"}}),
            "invalid_field",
            "recipient_options['alice@a.test'].orcpt",
        ),
    ],
)
async def test_invalid_requests_are_422_naming_the_field(
    body: dict[str, Any], code: str, field: str
) -> None:
    async with harness() as h:
        response = await _send(h.client, body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert error["message"]


async def test_address_errors_say_why() -> None:
    async with harness() as h:
        response = await _send(h.client, message(to=["a@example..test"]))
    assert response.json()["error"]["message"] == "domain must not contain '..'"


async def test_body_that_is_not_json_is_400() -> None:
    async with harness() as h:
        response = await h.client.post(
            SEND, content=b'{"to": [', headers={**bearer(), "Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


async def test_oversize_messages_are_413() -> None:
    big = b"x" * (MAX_MESSAGE_SIZE + 1)
    near = b"y" * (MAX_MESSAGE_SIZE * 3 // 4 + 1000)  # fits raw, not once base64-encoded
    attachment = {"filename": "big.bin", "content": ""}
    async with harness() as h:
        too_big = await _send(h.client, message(attachments=[attachment | {"content": b64(big)}]))
        encoded = await _send(h.client, message(attachments=[attachment | {"content": b64(near)}]))
        long_text = await _send(h.client, message(text="z" * (MAX_MESSAGE_SIZE + 1)))
        raw = await _send(
            h.client,
            {
                "raw": b64(b"Subject: x\r\n\r\n" + big),
                "to": ["a@a.test"],
                "envelope_from": "a@b.test",
            },
        )
    for response, field in [
        (too_big, "attachments"),
        (encoded, "attachments"),
        (long_text, "text"),
        (raw, "raw"),
    ]:
        assert response.status_code == 413, response.text
        assert response.json()["error"]["code"] == "message_too_large"
        assert response.json()["error"]["field"] == field


async def test_unknown_paths_and_methods_answer_in_the_error_shape() -> None:
    async with harness() as h:
        missing = await h.client.get("/api/v1/nothing")
        method = await h.client.get(SEND)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert method.status_code == 405
    assert method.json()["error"]["code"] == "method_not_allowed"


# -- the queue is down -------------------------------------------------------------------------


async def test_broker_never_connected_is_503() -> None:
    async with harness() as h:
        response = await _send(h.client, message())
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"
    assert int(response.headers["Retry-After"]) > 0


async def test_broker_connection_lost_is_503(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        await h.broker.close()
        response = await _send(h.client, message())
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "unavailable"
    assert "Retry-After" in response.headers


# -- Idempotency-Key ---------------------------------------------------------------------------


async def test_retry_with_the_same_key_replays_the_first_answer(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        first = await _send(
            h.client, message(to=["a@a.test", "b@b.test"]), **{"Idempotency-Key": "k1"}
        )
        again = await _send(
            h.client, message(to=["a@a.test", "b@b.test"]), **{"Idempotency-Key": "k1"}
        )
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert await inbound_count(amqp_url) == 2


async def test_json_key_order_does_not_make_another_request(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        first = await _send(
            h.client, message(headers={"X-A": "1", "X-B": "2"}), **{"Idempotency-Key": "k"}
        )
        again = await _send(
            h.client, message(headers={"X-B": "2", "X-A": "1"}), **{"Idempotency-Key": "k"}
        )
    assert again.json() == first.json()


async def test_same_key_with_another_request_is_422(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        first = await _send(h.client, message(), **{"Idempotency-Key": "k2"})
        other = await _send(h.client, message(subject="Changed"), **{"Idempotency-Key": "k2"})
    assert first.status_code == 202
    assert other.status_code == 422
    assert other.json()["error"] == {
        "code": "idempotency_key_reused",
        "message": "this key was already used for a different request",
        "field": "Idempotency-Key",
    }
    assert await inbound_count(amqp_url) == 1


async def test_concurrent_duplicates_send_once(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        answers = await asyncio.gather(
            *(_send(h.client, message(), **{"Idempotency-Key": "k3"}) for _ in range(5))
        )
    assert {r.status_code for r in answers} == {202}
    assert len({r.text for r in answers}) == 1
    assert await inbound_count(amqp_url) == 1


async def test_keys_belong_to_one_api_user(amqp_url: str) -> None:
    async with harness(amqp_url) as h:
        mine = await _send(h.client, message(), **{"Idempotency-Key": "shared"})
        theirs = await h.client.post(
            SEND, json=message(), headers={**bearer(OTHER_USER), "Idempotency-Key": "shared"}
        )
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["message_id"] != theirs.json()["message_id"]


async def test_a_failed_request_is_not_remembered(amqp_url: str) -> None:
    async with harness() as h:
        refused = await _send(h.client, message(to=["bad@"]), **{"Idempotency-Key": "k4"})
        fixed = await _send(h.client, message(to=["bad@"]), **{"Idempotency-Key": "k4"})
    assert refused.status_code == fixed.status_code == 422
    assert fixed.json()["error"]["code"] == "invalid_address"  # checked again, not replayed
    async with harness(amqp_url) as h:
        await h.broker.close()
        unavailable = await _send(h.client, message(), **{"Idempotency-Key": "k5"})
        assert unavailable.status_code == 503
        await h.broker.connect()
        retried = await _send(h.client, message(), **{"Idempotency-Key": "k5"})
    assert retried.status_code == 202
    assert await inbound_count(amqp_url) == 1


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
async def test_malformed_idempotency_key_is_422(key: str) -> None:
    async with harness() as h:
        response = await _send(h.client, message(), **{"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "Idempotency-Key"


# -- the OpenAPI document ----------------------------------------------------------------------


async def test_openapi_document_describes_the_api() -> None:
    async with harness() as h:
        response = await h.client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    for path in ("/api/v1/send", "/api/v1/send/bulk"):
        operation = document["paths"][path]["post"]
        assert "202" in operation["responses"]
        for status in ("400", "401", "403", "413", "422", "503"):
            schema = operation["responses"][status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorResponse"}
        assert {"bearer": []} in operation["security"] and {"basic": []} in operation["security"]
        assert any(p["name"] == "Idempotency-Key" for p in operation["parameters"])
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's own 422 shape is replaced
    assert schemas["SendRequest"]["properties"]["api_data"]["description"]
    assert schemas["SendRequest"]["examples"]
    notify = schemas["SendRequest"]["properties"]["notify"]["anyOf"][0]["items"]
    assert notify["enum"] == ["NEVER", "SUCCESS", "FAILURE", "DELAY"]
    assert schemas["RecipientOptions"]["properties"]["orcpt"]["description"]
    assert "notify" in schemas["BulkRecipient"]["properties"]


async def test_request_bodies_over_the_limit_are_413_before_being_read() -> None:
    async with harness() as h:
        limited = httpx.ASGITransport(
            app=BodyLimit(h.app, limit=lambda: 100), client=("127.0.0.1", 1)
        )
        async with httpx.AsyncClient(transport=limited, base_url="http://ingress.test") as client:
            declared = await client.post(SEND, json=message(text="x" * 200), headers=bearer())

            async def chunks() -> AsyncIterator[bytes]:
                for _ in range(10):
                    yield b" " * 50

            streamed = await client.post(SEND, content=chunks(), headers=bearer())
            small = await client.post(SEND, json={}, headers=bearer())
    for response in (declared, streamed):
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
    assert small.status_code == 422
