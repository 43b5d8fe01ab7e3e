"""What a send request means, checked: guard clauses that refuse with an `ApiError` naming the
field, and otherwise turn the request into what `submit` needs.

Everything is checked before anything is published: a bulk request with a bad recipient at
index 500 sends nothing.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass

from postline.common.addresses import Address, AddressError, parse_address
from postline.common.credentials import Principal
from postline.common.dsn import DsnError, dsn_request, parse_envid, parse_notify, parse_orcpt
from postline.common.policy import Policy, Server
from postline.ingress.api import errors
from postline.ingress.api.errors import ApiError, invalid
from postline.ingress.api.models import (
    BULK_MAX_RECIPIENTS,
    BulkRecipient,
    BulkRequest,
    MessageFields,
    RecipientOptions,
    SendRequest,
)
from postline.ingress.api.models import Attachment as AttachmentModel
from postline.ingress.api.templates import placeholders, render
from postline.ingress.compose_mime import Attachment, Draft, header_problem, is_reserved_header
from postline.v1 import delivery_pb2

# RFC 5322 §3.6.8 field name: printable US-ASCII except ':'.
_HEADER_NAME = re.compile(r"[!-9;-~]{1,76}")
# Control characters other than TAB: a CR or LF would end the header line (header injection).
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# A raw message starts with a header field (RFC 5322 §2.2; §4.5.3 allows WSP before ':').
_RAW_FIRST_FIELD = re.compile(rb"[!-9;-~]+[ \t]*:")
# MIME type/subtype (RFC 2045 §5.1 tokens).
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9!#$&^_.+\-]+/[A-Za-z0-9!#$&^_.+\-]+")
_MAX_HEADER_VALUE = 2000

_COMPOSE_FIELDS = ("from", "from_name", "subject", "text", "html", "api_data")


@dataclass(frozen=True)
class Outgoing:
    """One message ready for `submit`."""

    envelope_from: Address
    recipients: list[Address]
    content: bytes
    dsn: Sequence[delivery_pb2.DsnRequest | None] = ()  # per recipient (RFC 3461)


@dataclass(frozen=True)
class Template:
    """The checked parts of a message, before per-recipient filling."""

    sender: Address
    sender_name: str
    envelope_from: Address
    subject: str
    text: str | None
    html: str | None
    headers: dict[str, str]
    api_data: str
    attachments: list[Attachment]
    names: frozenset[str]  # placeholders used anywhere
    subject_names: frozenset[str]  # placeholders used in the subject

    def draft(self, recipients: Sequence[Address]) -> Draft:
        return Draft(
            sender=self.sender.smtp_form(),
            sender_name=self.sender_name,
            recipients=[r.smtp_form() for r in recipients],
            subject=self.subject,
            text=self.text,
            html=self.html,
            headers=self.headers,
            api_data=self.api_data,
            attachments=self.attachments,
        )


@dataclass(frozen=True)
class BulkItem:
    recipient: Address
    substitutions: dict[str, str]
    api_data: str
    dsn: delivery_pb2.DsnRequest | None = None


def check_server(requested: str | None, principal: Principal, policy: Policy) -> Server:
    """The server to send with: the API user's own; another one is refused."""
    if requested and requested != principal.server:
        if requested not in policy.servers:
            raise invalid(errors.UNKNOWN_SERVER, f"no server named {requested!r}", "server")
        raise ApiError(
            403,
            errors.SERVER_NOT_ALLOWED,
            f"API user {principal.api_user!r} sends with server {principal.server!r} only",
            "server",
        )
    return policy.servers[principal.server]


def check_recipients(values: list[str], server: Server) -> list[Address]:
    """The ``to`` list: at least one, at most ``relay.max_recipients``, each valid, no twins."""
    limit = server.relay.max_recipients
    if not values:
        raise invalid(errors.MISSING_FIELD, "at least one recipient is required", "to")
    if len(values) > limit:
        raise invalid(
            errors.TOO_MANY_RECIPIENTS,
            f"at most {limit} recipients per message (relay.max_recipients); "
            "use /api/v1/send/bulk for more",
            "to",
        )
    seen: set[Address] = set()
    recipients = []
    for i, text in enumerate(values):
        address = _address(text, "to", i)
        if address in seen:
            raise invalid(errors.DUPLICATE_RECIPIENT, "recipient given twice", "to", i)
        seen.add(address)
        recipients.append(address)
    return recipients


def check_raw(request: SendRequest, recipients: list[Address], server: Server) -> Outgoing:
    """A raw message: base64 of an RFC 5322 message, with its envelope and nothing else."""
    for name in _COMPOSE_FIELDS:
        if getattr(request, "from_" if name == "from" else name):
            raise invalid(errors.CONFLICTING_FIELD, "give either raw or the message's parts", name)
    if request.headers or request.attachments:
        name = "headers" if request.headers else "attachments"
        raise invalid(errors.CONFLICTING_FIELD, "give either raw or the message's parts", name)
    if not request.envelope_from:
        raise invalid(
            errors.MISSING_FIELD, "a raw message needs its envelope sender", "envelope_from"
        )
    envelope_from = _address(request.envelope_from, "envelope_from")
    content = _decode_base64(request.raw or "", "raw")
    if not _RAW_FIRST_FIELD.match(content):
        raise invalid(
            errors.INVALID_RAW_MESSAGE,
            "a raw message starts with its header fields (RFC 5322), e.g. 'From: ...'",
            "raw",
        )
    check_size(content, server, "raw")
    return Outgoing(envelope_from, recipients, content)


def check_template(fields: MessageFields) -> Template:
    """Sender, subject, body, headers and attachments of a message or bulk template."""
    if not fields.from_:
        raise invalid(errors.MISSING_FIELD, "a sender is required", "from")
    sender = _address(fields.from_, "from")
    envelope_from = (
        _address(fields.envelope_from, "envelope_from") if fields.envelope_from else sender
    )
    if not fields.text and not fields.html:
        raise invalid(errors.MISSING_BODY, "give text, html or both", "text")
    subject = fields.subject or ""
    for name in ("from_name", "subject", "api_data"):
        _one_line(getattr(fields, name), name)
    return Template(
        sender=sender,
        sender_name=fields.from_name or "",
        envelope_from=envelope_from,
        subject=subject,
        text=fields.text or None,
        html=fields.html or None,
        headers=_headers(fields.headers),
        api_data=fields.api_data or "",
        attachments=[_attachment(i, a) for i, a in enumerate(fields.attachments)],
        names=placeholders(subject) | placeholders(fields.text) | placeholders(fields.html),
        subject_names=placeholders(subject),
    )


def check_size(content: bytes, server: Server, field: str) -> None:
    limit = server.relay.max_message_size
    if len(content) > limit:
        raise ApiError(
            413,
            errors.MESSAGE_TOO_LARGE,
            f"the message is {len(content)} bytes, over the server's limit of {limit} "
            "(relay.max_message_size)",
            field,
        )


def size_field(template: Template) -> str:
    """The field to blame for an oversize composed message: what usually makes it big."""
    if template.attachments:
        return "attachments"
    return "html" if template.html else "text"


def check_attachments_fit(template: Template, server: Server) -> None:
    """Refuse before composing when the attachments alone are already too big."""
    total = sum(len(a.content) for a in template.attachments)
    limit = server.relay.max_message_size
    if total > limit:
        raise ApiError(
            413,
            errors.MESSAGE_TOO_LARGE,
            f"the attachments are {total} bytes, over the server's limit of {limit} "
            "(relay.max_message_size)",
            "attachments",
        )


def check_bulk(request: BulkRequest, template: Template) -> list[BulkItem]:
    if not request.recipients:
        raise invalid(errors.MISSING_FIELD, "at least one recipient is required", "recipients")
    if len(request.recipients) > BULK_MAX_RECIPIENTS:
        raise invalid(
            errors.TOO_MANY_RECIPIENTS,
            f"at most {BULK_MAX_RECIPIENTS} recipients per bulk request",
            "recipients",
        )
    return [_bulk_item(i, r, template, request) for i, r in enumerate(request.recipients)]


def fill(template: Template, item: BulkItem) -> Draft:
    """The template filled for one bulk recipient (values HTML-escaped in html)."""
    values = item.substitutions
    return Draft(
        sender=template.sender.smtp_form(),
        sender_name=template.sender_name,
        recipients=[item.recipient.smtp_form()],
        subject=render(template.subject, values),
        text=render(template.text, values) if template.text else None,
        html=render(template.html, values, escape_html=True) if template.html else None,
        headers=template.headers,
        api_data=item.api_data,
        attachments=template.attachments,
    )


# -- the guard clauses ------------------------------------------------------------------------


def _address(text: str, *loc: str | int) -> Address:
    try:
        return parse_address(text.strip())
    except AddressError as exc:
        raise invalid(errors.INVALID_ADDRESS, exc.reason, *loc) from None


def _one_line(value: str | None, *loc: str | int) -> None:
    if value and _CONTROL.search(value):
        raise invalid(errors.INVALID_FIELD, "must be one line without control characters", *loc)


def _headers(headers: dict[str, str]) -> dict[str, str]:
    seen: set[str] = set()
    for name, value in headers.items():
        if not _HEADER_NAME.fullmatch(name):
            raise invalid(
                errors.INVALID_HEADER,
                "a header name is 1 to 76 printable US-ASCII characters without ':' or space",
                "headers",
                name,
            )
        if is_reserved_header(name):
            raise invalid(
                errors.RESERVED_HEADER,
                f"{name} is set by Postline, not by headers",
                "headers",
                name,
            )
        if name.lower() in seen:
            raise invalid(errors.INVALID_HEADER, "header given twice", "headers", name)
        seen.add(name.lower())
        if _CONTROL.search(value) or len(value) > _MAX_HEADER_VALUE:
            raise invalid(
                errors.INVALID_HEADER,
                f"a header value is one line of at most {_MAX_HEADER_VALUE} characters "
                "without control characters",
                "headers",
                name,
            )
        problem = header_problem(name, value)
        if problem is not None:
            raise invalid(errors.INVALID_HEADER, problem, "headers", name)
    return dict(headers)


def _attachment(index: int, attachment: AttachmentModel) -> Attachment:
    if _CONTROL.search(attachment.filename):
        raise invalid(
            errors.INVALID_FIELD,
            "a file name has no control characters",
            "attachments",
            index,
            "filename",
        )
    if not _CONTENT_TYPE.fullmatch(attachment.content_type):
        raise invalid(
            errors.INVALID_FIELD,
            "a content type is type/subtype, e.g. application/pdf",
            "attachments",
            index,
            "content_type",
        )
    content = _decode_base64(attachment.content, "attachments", index, "content")
    return Attachment(attachment.filename, attachment.content_type.lower(), content)


def _decode_base64(text: str, *loc: str | int) -> bytes:
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise invalid(errors.INVALID_BASE64, "not valid base64 (RFC 4648)", *loc) from None


def _bulk_item(
    index: int, recipient: BulkRecipient, template: Template, request_fields: MessageFields
) -> BulkItem:
    address = _address(recipient.to, "recipients", index, "to")
    values = recipient.substitutions
    for name in sorted(template.names):
        if name not in values:
            raise invalid(
                errors.MISSING_SUBSTITUTION,
                f"no value for {{{{{name}}}}}",
                "recipients",
                index,
                "substitutions",
                name,
            )
    for name in template.subject_names:
        _one_line(values[name], "recipients", index, "substitutions", name)
    _one_line(recipient.api_data, "recipients", index, "api_data")
    dsn = check_dsn(
        request_fields,
        recipient.notify,
        recipient.orcpt,
        ("recipients", index, "notify"),
        ("recipients", index, "orcpt"),
    )
    return BulkItem(address, values, recipient.api_data or template.api_data, dsn)


def check_dsn(
    fields: MessageFields,
    notify: Sequence[str] | None,
    orcpt: str | None,
    notify_loc: tuple[str | int, ...],
    orcpt_loc: tuple[str | int, ...],
) -> delivery_pb2.DsnRequest | None:
    """One recipient's RFC 3461 request: its own ``notify`` or the message's, its ``orcpt``,
    the message's ``ret`` and ``envid``."""
    if notify is None:
        notify, notify_loc = fields.notify, ("notify",)
    try:
        flags = parse_notify(notify, "notify") if notify is not None else None
    except DsnError as exc:
        raise invalid(errors.INVALID_FIELD, exc.reason, *notify_loc) from None
    try:
        original = parse_orcpt(orcpt, "orcpt", xtext=False) if orcpt is not None else ""
    except DsnError as exc:
        raise invalid(errors.INVALID_FIELD, exc.reason, *orcpt_loc) from None
    try:
        envid = parse_envid(fields.envid, "envid", xtext=False) if fields.envid else ""
    except DsnError as exc:
        raise invalid(errors.INVALID_FIELD, exc.reason, "envid") from None
    ret = {
        "FULL": delivery_pb2.DSN_RETURN_FULL,
        "HDRS": delivery_pb2.DSN_RETURN_HEADERS,
        None: delivery_pb2.DSN_RETURN_UNSPECIFIED,
    }[fields.ret]
    return dsn_request(notify=flags, orcpt=original, ret=ret, envid=envid)


def check_send_dsn(
    request: SendRequest, recipients: list[Address]
) -> list[delivery_pb2.DsnRequest | None]:
    """The RFC 3461 request of each recipient of ``to`` (``recipient_options`` by address)."""
    options: dict[Address, tuple[str, RecipientOptions]] = {}
    for key, given in request.recipient_options.items():
        address = _address(key, "recipient_options", key)
        if address not in recipients:
            raise invalid(errors.INVALID_FIELD, "not a recipient of 'to'", "recipient_options", key)
        options[address] = (key, given)
    dsn = []
    for address in recipients:
        key, value = options.get(address, ("", RecipientOptions()))
        dsn.append(
            check_dsn(
                request,
                value.notify,
                value.orcpt,
                ("recipient_options", key, "notify"),
                ("recipient_options", key, "orcpt"),
            )
        )
    return dsn
