"""The send API's request and answer shapes: the source of its OpenAPI document.

The descriptions here are the API's documentation (`/docs`, `/openapi.json`); the gRPC
door converts its protobuf requests into the same models, so both doors share one schema and
one set of rules (see `postline.ingress.api.checks`). Fields are checked in two steps: shape
and types here (pydantic), meaning (addresses, base64, headers, limits) in `checks`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

BULK_MAX_RECIPIENTS = 10_000

_ADDRESS = (
    "A mail address, `local@domain` without angle brackets or display name (Postline's "
    "relaxed address rules: a local part with unusual dots is accepted and quoted when sent)."
)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


NotifyValue = Literal["NEVER", "SUCCESS", "FAILURE", "DELAY"]

_NOTIFY = (
    "Which delivery status notifications the envelope sender gets for this recipient (RFC "
    "3461 NOTIFY): `NEVER` alone, or any of `SUCCESS`, `FAILURE`, `DELAY`. Unset: the "
    "server's `notices` policy decides."
)
_ORCPT = (
    "The recipient's original address (RFC 3461 ORCPT), reported as `Original-Recipient` in "
    "notices: `addr-type;address` or a bare address (meaning `rfc822`)."
)


class RecipientOptions(_Model):
    notify: list[NotifyValue] | None = Field(
        default=None, description=_NOTIFY, examples=[["SUCCESS", "FAILURE"]]
    )
    orcpt: str | None = Field(
        default=None, max_length=500, description=_ORCPT, examples=["rfc822;alice@old.test"]
    )


class Attachment(_Model):
    filename: str = Field(
        min_length=1,
        max_length=255,
        description="File name shown to the recipient (UTF-8 allowed, no control characters).",
        examples=["invoice-2024-001.pdf"],
    )
    content_type: str = Field(
        default="application/octet-stream",
        description="MIME type of the file, `type/subtype`.",
        examples=["application/pdf"],
    )
    content: str = Field(
        description="The file's bytes, base64 (RFC 4648; line breaks are ignored).",
        examples=["JVBERi0xLjQK"],
    )


class MessageFields(_Model):
    """What a composed message and a bulk template have in common."""

    from_: str | None = Field(
        default=None,
        alias="from",
        description=f"Sender (`From:` header, and the envelope sender unless "
        f"`envelope_from` is given). Required unless `raw` is used. {_ADDRESS}",
        examples=["news@example.test"],
    )
    from_name: str | None = Field(
        default=None,
        max_length=200,
        description="Display name of the sender (`From: Name <address>`).",
        examples=["Example Shop"],
    )
    subject: str | None = Field(
        default=None,
        max_length=2000,
        description="Subject line (UTF-8; encoded per RFC 2047 when needed). One line.",
        examples=["Your order has shipped"],
    )
    text: str | None = Field(
        default=None,
        description="Plain-text body. At least one of `text` and `html` is required; with "
        "both the message is `multipart/alternative`.",
        examples=["Hello, your order is on its way."],
    )
    html: str | None = Field(
        default=None,
        description="HTML body.",
        examples=["<p>Hello, your order is on its way.</p>"],
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="Extra header fields, name to value (one line each). Names Postline sets "
        "itself are refused: From, To, Cc, Bcc, Subject, Date, MIME-Version, Content-*, "
        "X-Api-Data (use `api_data`), Return-Path. `Message-ID` may be given.",
        examples=[{"X-Category": "receipt", "Reply-To": "support@example.test"}],
    )
    api_data: str | None = Field(
        default=None,
        max_length=1000,
        description="Your own reference, sent as the `X-Api-Data` header and shown in the "
        "delivery and error logs and CSV (`apiData`). One line.",
        examples=["order-4711"],
    )
    server: str | None = Field(
        default=None,
        description="The sending server (configuration) of the API user; defaults to it and, "
        "when given, must equal it.",
        examples=["default"],
    )
    attachments: list[Attachment] = Field(
        default_factory=list,
        description="Files attached to the message (`multipart/mixed`).",
    )
    envelope_from: str | None = Field(
        default=None,
        description=f"Envelope sender (`MAIL FROM`), if it differs from `from`; required "
        f"with `raw`. {_ADDRESS}",
        examples=["bounces@example.test"],
    )
    ret: Literal["FULL", "HDRS"] | None = Field(
        default=None,
        description="What a notice returns of the message (RFC 3461 RET): `FULL` the whole "
        "message, `HDRS` its headers (the default).",
        examples=["HDRS"],
    )
    envid: str | None = Field(
        default=None,
        max_length=100,
        description="Your id of this message (RFC 3461 ENVID), reported as "
        "`Original-Envelope-Id` in notices. Printable US-ASCII.",
        examples=["order-4711"],
    )
    notify: list[NotifyValue] | None = Field(
        default=None, description=f"{_NOTIFY} Applies to every recipient.", examples=[["FAILURE"]]
    )


class SendRequest(MessageFields):
    """One message to one or more recipients (one delivery each)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "shop@example.test",
                    "to": ["alice@example.test"],
                    "subject": "Your order has shipped",
                    "text": "Hello Alice, your order is on its way.",
                    "html": "<p>Hello Alice, your order is on its way.</p>",
                    "headers": {"X-Category": "receipt"},
                    "api_data": "order-4711",
                }
            ]
        }
    )

    to: list[str] = Field(
        description=f"Recipients (envelope and `To:` header), at most the server's "
        f"`relay.max_recipients`. {_ADDRESS}",
        examples=[["alice@example.test"]],
    )
    raw: str | None = Field(
        default=None,
        description="A complete RFC 5322 message, base64, sent unchanged (Postline adds a "
        "`Message-ID` if it has none). Use with `envelope_from` and `to` only.",
        examples=["RnJvbTogYUBleGFtcGxlLnRlc3QNClN1YmplY3Q6IGhpDQoNCkhlbGxvLg0K"],
    )
    recipient_options: dict[str, RecipientOptions] = Field(
        default_factory=dict,
        description="Per recipient of `to` (the address as written there): its own `notify` "
        "(instead of the message's) and `orcpt`.",
        examples=[{"alice@example.test": {"notify": ["SUCCESS", "FAILURE"]}}],
    )


class BulkRecipient(_Model):
    to: str = Field(description=_ADDRESS, examples=["alice@example.test"])
    substitutions: dict[str, str] = Field(
        default_factory=dict,
        description="Values of the template's `{{name}}` placeholders for this recipient "
        "(names: letters, digits, `_ . -`). Every placeholder needs a value; in `html` the "
        "value is HTML-escaped.",
        examples=[{"name": "Alice", "order": "4711"}],
    )
    api_data: str | None = Field(
        default=None,
        max_length=1000,
        description="This recipient's `X-Api-Data` (else the template's `api_data`).",
        examples=["order-4711"],
    )
    notify: list[NotifyValue] | None = Field(
        default=None, description=f"{_NOTIFY} Instead of the template's `notify`."
    )
    orcpt: str | None = Field(default=None, max_length=500, description=_ORCPT)


class BulkRequest(MessageFields):
    """One template sent to many recipients, each as its own message."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "from": "news@example.test",
                    "subject": "Hello {{name}}",
                    "text": "Dear {{name}}, your code is {{code}}.",
                    "recipients": [
                        {"to": "ann@example.test", "substitutions": {"name": "Ann", "code": "1"}},
                        {"to": "bob@example.test", "substitutions": {"name": "Bob", "code": "2"}},
                    ],
                }
            ]
        }
    )

    recipients: list[BulkRecipient] = Field(
        description=f"One message per entry, at most {BULK_MAX_RECIPIENTS:,}; `subject`, "
        "`text` and `html` may hold `{{name}}` placeholders.",
    )


class RecipientDelivery(BaseModel):
    recipient: str = Field(description="The recipient as it is sent (`local@domain`).")
    delivery_id: str = Field(description="Id of this recipient's delivery (in reports).")


class SendResponse(BaseModel):
    """Accepted: every delivery is safely queued (confirmed by the broker)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message_id": "018f2c5e9a7b4c1d2e3f405162738495",
                    "deliveries": [
                        {
                            "recipient": "alice@example.test",
                            "delivery_id": "018f2c5e9a7b9f8e7d6c5b4a39281706",
                        }
                    ],
                }
            ]
        }
    )

    message_id: str = Field(description="Id of the message (`messageId` in reports).")
    deliveries: list[RecipientDelivery] = Field(description="One delivery per recipient.")


class BulkResponse(BaseModel):
    """Accepted: one message per recipient, in the order of `recipients`."""

    messages: list[SendResponse]


class ErrorDetail(BaseModel):
    code: str = Field(description="Stable machine-readable code.", examples=["invalid_address"])
    message: str = Field(description="What is wrong, for humans.", examples=["domain is empty"])
    field: str | None = Field(
        default=None,
        description="The request field at fault, as a path: `to[2]`, "
        "`recipients[5].to`, `attachments[0].content`, `Idempotency-Key`.",
        examples=["to[2]"],
    )


class ErrorResponse(BaseModel):
    """Every refusal, with a 4xx status (503 when the queue is unavailable)."""

    error: ErrorDetail
