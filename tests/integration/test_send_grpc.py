"""postline.v1.SendService over a real port: the same rules as the HTTP API."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest

from postline.ingress.grpc_server import GrpcServer, peer_ip
from postline.v1 import delivery_pb2, send_pb2, send_pb2_grpc
from tests.integration.send_api_support import (
    AUTH,
    REMOTE_USER,
    SECRET,
    USER,
    b64,
    harness,
    inbound_count,
    parsed,
    request,
    take_deliveries,
    text_of,
)


@contextlib.asynccontextmanager
async def service(amqp_url: str | None = None) -> AsyncIterator[send_pb2_grpc.SendServiceStub]:
    async with harness(amqp_url) as h:
        server = GrpcServer(h.api, "127.0.0.1:0")
        await server.start()
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
                yield send_pb2_grpc.SendServiceStub(channel)
        finally:
            await server.stop(grace=1)


async def _refusal(call: object) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await call  # type: ignore[misc]
    return refused.value


def _trailing(error: grpc.aio.AioRpcError) -> dict[str, str]:
    return {str(k): str(v) for k, v in error.trailing_metadata() or ()}


async def test_send_composes_and_queues(amqp_url: str) -> None:
    attachment = send_pb2.Attachment(
        filename="a.bin", content_type="application/pdf", content=b"%PDF"
    )
    async with service(amqp_url) as stub:
        answer = await stub.Send(
            request(
                to=["a@a.test", "b@b.test"],
                html="<p>Hello.</p>",
                headers={"X-Category": "receipt"},
                api_data="ref-9",
                attachments=[attachment],
                from_name="Shop",
            ),
            metadata=AUTH,
        )
    assert [d.recipient for d in answer.deliveries] == ["a@a.test", "b@b.test"]
    deliveries = {d.delivery_id: d for d in await take_deliveries(amqp_url)}
    assert set(deliveries) == {d.delivery_id for d in answer.deliveries}
    delivery = next(iter(deliveries.values()))
    assert delivery.message_id == answer.message_id
    assert delivery.api_data == "ref-9"
    mail = parsed(delivery.content)
    assert mail["X-Category"] == "receipt"
    assert mail["From"] == "Shop <shop@example.test>"
    body, attached = mail.iter_parts()
    assert [text_of(p) for p in body.iter_parts()] == ["Hello.\n", "<p>Hello.</p>\n"]
    assert attached.get_content() == b"%PDF"


async def test_raw_bytes_go_unchanged(amqp_url: str) -> None:
    raw = b"From: a@example.test\r\nSubject: raw\r\n\r\nBody\r\n"
    async with service(amqp_url) as stub:
        await stub.Send(
            send_pb2.SendRequest(raw=raw, envelope_from="a@example.test", to=["x@a.test"]),
            metadata=AUTH,
        )
    (delivery,) = await take_deliveries(amqp_url)
    assert delivery.content.endswith(raw)


async def test_bulk_fills_each_message(amqp_url: str) -> None:
    template = request(subject="Hi {{name}}", text="Dear {{name}}")
    recipients = [
        send_pb2.BulkRecipient(to=f"u{i}@a.test", substitutions={"name": f"N{i}"}) for i in range(3)
    ]
    async with service(amqp_url) as stub:
        answer = await stub.SendBulk(
            send_pb2.SendBulkRequest(template=template, recipients=recipients), metadata=AUTH
        )
    assert [m.deliveries[0].recipient for m in answer.messages] == [
        "u0@a.test",
        "u1@a.test",
        "u2@a.test",
    ]
    subjects = sorted(d.subject for d in await take_deliveries(amqp_url))
    assert subjects == ["Hi N0", "Hi N1", "Hi N2"]


async def test_delivery_status_notifications_as_over_http(amqp_url: str) -> None:
    async with service(amqp_url) as stub:
        await stub.Send(
            request(
                to=["a@a.test", "b@b.test"],
                ret="FULL",
                envid="order-4711",
                notify=["FAILURE", "DELAY"],
                recipient_options={
                    "b@b.test": send_pb2.RecipientOptions(
                        notify=["SUCCESS"], orcpt="rfc822;bob@old.test"
                    )
                },
            ),
            metadata=AUTH,
        )
        await stub.SendBulk(
            send_pb2.SendBulkRequest(
                template=request(notify=["NEVER"]),
                recipients=[
                    send_pb2.BulkRecipient(to="c@c.test"),
                    send_pb2.BulkRecipient(to="d@d.test", notify=["FAILURE"], orcpt="d@old.test"),
                ],
            ),
            metadata=AUTH,
        )
    dsn = {d.recipient: d.dsn for d in await take_deliveries(amqp_url)}
    a, b, c, d = (dsn[r] for r in ("a@a.test", "b@b.test", "c@c.test", "d@d.test"))
    assert (a.notify_given, a.notify_failure, a.notify_delay, a.notify_success) == (
        True,
        True,
        True,
        False,
    )
    assert a.ret == delivery_pb2.DSN_RETURN_FULL and a.envelope_id == "order-4711"
    assert (b.notify_success, b.notify_failure, b.original_recipient) == (
        True,
        False,
        "rfc822;bob@old.test",
    )
    assert c.notify_given and c.notify_never
    assert (d.notify_failure, d.notify_never, d.original_recipient) == (
        True,
        False,
        "rfc822;d@old.test",
    )


async def test_idempotency_key_in_metadata_or_field(amqp_url: str) -> None:
    async with service(amqp_url) as stub:
        keyed = (*AUTH, ("idempotency-key", "g1"))
        first = await stub.Send(request(), metadata=keyed)
        again = await stub.Send(request(), metadata=keyed)
        by_field = await stub.Send(request(idempotency_key="g2"), metadata=AUTH)
        by_field_again = await stub.Send(request(idempotency_key="g2"), metadata=AUTH)
        reused = await _refusal(stub.Send(request(subject="Other"), metadata=keyed))
    assert again == first
    assert by_field_again == by_field
    assert reused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailing(reused)["postline-error-code"] == "idempotency_key_reused"
    assert await inbound_count(amqp_url) == 2


@pytest.mark.parametrize(
    ("metadata", "code"),
    [
        ((), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {USER}:wrong"),), grpc.StatusCode.UNAUTHENTICATED),
        ((("authorization", f"Bearer {REMOTE_USER}:{SECRET}"),), grpc.StatusCode.PERMISSION_DENIED),
    ],
)
async def test_credentials_and_address(
    metadata: tuple[tuple[str, str], ...], code: grpc.StatusCode
) -> None:
    async with service() as stub:
        refused = await _refusal(stub.Send(request(), metadata=metadata))
    assert refused.code() == code


@pytest.mark.parametrize(
    ("call", "field", "code"),
    [
        ("send", "to[1]", "invalid_address"),
        ("send", "text", "missing_body"),
        ("send", "headers.From", "reserved_header"),
        ("send", "attachments[0].filename", "missing_field"),
        ("bulk", "recipients[1].to", "invalid_address"),
        ("bulk", "template.from", "missing_field"),
        ("bulk", "template.raw", "conflicting_field"),
        ("bulk", "recipients[0].substitutions.name", "missing_substitution"),
        ("send", "notify[0]", "invalid_field"),
        ("send", "recipient_options['x@x.test']", "invalid_field"),
        ("bulk", "recipients[0].notify", "invalid_field"),
    ],
)
async def test_invalid_requests_name_the_field(call: str, field: str, code: str) -> None:
    requests = {
        "to[1]": request(to=["a@a.test", "nope"]),
        "text": request(text=""),
        "headers.From": request(headers={"From": "x@y.test"}),
        "attachments[0].filename": request(attachments=[send_pb2.Attachment(content=b"x")]),
        "recipients[1].to": send_pb2.SendBulkRequest(
            template=request(),
            recipients=[send_pb2.BulkRecipient(to="a@a.test"), send_pb2.BulkRecipient(to="b@")],
        ),
        "template.from": send_pb2.SendBulkRequest(
            template=request(**{"from": ""}), recipients=[send_pb2.BulkRecipient(to="a@a.test")]
        ),
        "template.raw": send_pb2.SendBulkRequest(
            template=request(raw=b"From: a@b.test\r\n\r\n"),
            recipients=[send_pb2.BulkRecipient(to="a@a.test")],
        ),
        "notify[0]": request(notify=["SOMETIMES"]),
        "recipient_options['x@x.test']": request(
            recipient_options={"x@x.test": send_pb2.RecipientOptions(notify=["FAILURE"])}
        ),
        "recipients[0].notify": send_pb2.SendBulkRequest(
            template=request(),
            recipients=[send_pb2.BulkRecipient(to="a@a.test", notify=["NEVER", "FAILURE"])],
        ),
        "recipients[0].substitutions.name": send_pb2.SendBulkRequest(
            template=request(text="Hi {{name}}"), recipients=[send_pb2.BulkRecipient(to="a@a.test")]
        ),
    }
    async with service() as stub:
        method = stub.Send if call == "send" else stub.SendBulk
        refused = await _refusal(method(requests[field], metadata=AUTH))
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.details() or "").startswith(f"{field}: ")
    trailing = _trailing(refused)
    assert (trailing["postline-error-code"], trailing["postline-error-field"]) == (code, field)


async def test_oversize_is_invalid_argument() -> None:
    async with service() as stub:
        refused = await _refusal(
            stub.Send(
                request(attachments=[send_pb2.Attachment(filename="a", content=b"x" * 70_000)]),
                metadata=AUTH,
            )
        )
    assert refused.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailing(refused)["postline-error-code"] == "message_too_large"


async def test_broker_unavailable_is_unavailable() -> None:
    async with service() as stub:
        refused = await _refusal(stub.Send(request(), metadata=AUTH))
    assert refused.code() == grpc.StatusCode.UNAVAILABLE


def test_peer_addresses() -> None:
    assert peer_ip("ipv4:127.0.0.1:5000") == "127.0.0.1"
    assert peer_ip("ipv6:[::1]:5000") == "::1"
    assert peer_ip("ipv6:%5B::1%5D:5000") == "::1"
    assert peer_ip("unix:/tmp/sock") == ""
    assert b64("x") == "eA=="
