"""Metamorphic measurement of the bounce classifier (issue #16, round 73).

    .venv/bin/python bench/bounce_accuracy/invariance.py [--corpus DIR] [--wider DIR]
        [--generated DIR] [--transform NAME ...] [--changes]

Each transformation below rewrites a mail in a way an RFC says does not change its meaning
(line endings, a text part's transfer encoding, the case of field names, folding, trace
fields a relay adds...). Every labelled mail of each set is classified before and after each
transformation, and the answer compared: the kind (bounce or not), and per recipient its
status and whether delivery failed or was deferred. Any difference is the parser reading the
form of a mail rather than what it says.

A transformation is pure (bytes -> bytes) and answers ``None`` where it does not apply to a
mail or cannot apply cleanly (nothing to change, a part it could not rewrite exactly, a
structure the standard library would read differently afterwards): such a mail is counted as
skipped, never as unchanged.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

Transform = Callable[[bytes], bytes | None]

_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)([ \t]*:)", re.M)
_HEADER_PARSER = BytesHeaderParser(policy=compat32)
_ENCODINGS = frozenset({"7bit", "8bit", "binary", "quoted-printable", "base64"})
_IDENTITY = frozenset({"", "7bit", "8bit"})


# --- a MIME entity taken apart byte for byte ------------------------------------------


@dataclass
class Entity:
    """A MIME entity as its bytes: the header block (without the line break that ends its
    last field), the blank line that ends it (with that line break), and the body."""

    head: bytes
    blank: bytes
    body: bytes

    @property
    def fields(self) -> Message:
        return _HEADER_PARSER.parsebytes(self.head + b"\n\n")

    @property
    def eol(self) -> bytes:
        return b"\r\n" if b"\r\n" in self.head + self.blank else b"\n"

    def __bytes__(self) -> bytes:
        return self.head + self.blank + self.body


def split_entity(raw: bytes) -> Entity | None:
    """The entity's header and body; ``None`` if no blank line ends a header block."""
    if raw.startswith((b"\n", b"\r\n")):
        return None
    found = _BLANK_LINE.search(raw)
    if found is None:
        return None
    return Entity(raw[: found.start()], raw[found.start() : found.end()], raw[found.end() :])


def _delimiters(body: bytes, boundary: str) -> list[re.Match[bytes]]:
    """RFC 2046 section 5.1.1: a delimiter is "--" and the boundary at the start of a line
    (the line break before it belongs to it), up to the close delimiter."""
    pattern = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("latin-1")) + rb"(--)?[ \t]*(?=\r?\n|\Z)"
    )
    found = []
    for match in pattern.finditer(body):
        found.append(match)
        if match.group(1):
            break
    return found


def _eol_after(body: bytes, at: int) -> int:
    if body.startswith(b"\r\n", at):
        return at + 2
    return at + 1 if body.startswith(b"\n", at) else at


LeafRewrite = Callable[[Entity, bool], bytes | None]


def rewrite_leaves(raw: bytes, leaf: LeafRewrite, *, top: bool = True) -> bytes | None:
    """The entity with each leaf part (not a multipart, never inside a message/* part: the
    returned message is left as it came) given to ``leaf(entity, top)``, which answers its new
    bytes or ``None`` to leave it; ``None`` if no leaf changed."""
    entity = split_entity(raw)
    if entity is None:
        return None
    fields = entity.fields
    ctype = fields.get_content_type()
    if fields.get_content_maintype() == "multipart":
        boundary = fields.get_boundary()
        if not boundary:
            return None
        found = _delimiters(entity.body, boundary)
        if not found:
            return None
        out = [entity.body[: found[0].start()]]
        changed = False
        for i, match in enumerate(found):
            start = _eol_after(entity.body, match.end())
            out.append(entity.body[match.start() : start])
            end = found[i + 1].start() if i + 1 < len(found) else len(entity.body)
            part = entity.body[start:end]
            if match.group(1):
                out.append(part)  # the epilogue
                continue
            new = rewrite_leaves(part, leaf, top=False)
            changed |= new is not None
            out.append(part if new is None else new)
        if not changed:
            return None
        return entity.head + entity.blank + b"".join(out)
    if ctype.startswith("message/") and ctype not in REPORT_LEAVES | RETURNED:
        return None
    return leaf(entity, top)


# The returned message or its header, given to a leaf rewrite as a whole (never descended).
RETURNED = frozenset({"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"})

# message/* parts read as fields (RFC 3464, 8098, 5965), never a returned message.
REPORT_LEAVES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
    }
)


def _same_structure(before: bytes, after: bytes) -> bool:
    """Whether the standard library reads the same tree of parts (their types) from
    both: a guard against a rewrite that a byte-level split got wrong."""

    def tree(raw: bytes) -> list[str]:
        return [p.get_content_type() for p in email.message_from_bytes(raw).walk()]

    return tree(before) == tree(after)


def _guarded(before: bytes, after: bytes | None) -> bytes | None:
    if after is None or after == before or not _same_structure(before, after):
        return None
    return after


# --- header blocks ----------------------------------------------------------------------


def _fields(head: bytes) -> Iterator[bytes]:
    """The fields of a header block, each with its continuation lines and line breaks."""
    lines = head.splitlines(keepends=True)
    current = b""
    for line in lines:
        if line[:1] in (b" ", b"\t") and current:
            current += line
            continue
        if current:
            yield current
        current = line
    if current:
        yield current


def _with_field_names(head: bytes, change: Callable[[bytes], bytes]) -> bytes:
    return _FIELD_NAME.sub(lambda m: change(m.group(1)) + m.group(2), head)


def _fold(field: bytes, width: int, eol: bytes) -> bytes:
    """A field folded before white space (RFC 5322 section 2.2.3: a line break may be put
    before any white space where folding white space is allowed, which in a field's value is
    wherever white space is, quoted strings included) so that no line exceeds ``width`` where
    a space allows; a field already folded, or short, is left."""
    end = len(field) - len(field.rstrip(b"\r\n"))
    text, tail = field[: len(field) - end], field[len(field) - end :]
    if len(text) <= width or b"\n" in text:
        return field
    out = []
    line_start = 0
    last_space = -1
    value = text.find(b":") + 2  # no break between the name's colon and the value
    i = 0
    while i < len(text):
        if text[i : i + 1] in (b" ", b"\t") and i > max(line_start, value):
            # never a line of white space only
            if text[i + 1 : i + 2] not in (b" ", b"\t", b"") and text[line_start:i].strip():
                last_space = i
        if i - line_start >= width and last_space > line_start:
            out.append(text[line_start:last_space] + eol)
            line_start = last_space
            last_space = -1
        i += 1
    out.append(text[line_start:])
    return b"".join(out) + tail


def _fold_head(head: bytes, width: int, eol: bytes) -> bytes:
    folded = b"".join(_fold(f, width, eol) for f in _fields(head + eol))
    return folded[: -len(eol)]


def _top(raw: bytes) -> Entity | None:
    entity = split_entity(raw)
    return entity if entity is not None and entity.fields.keys() else None


def _report_fields(entity: Entity, change: Callable[[bytes, bytes], bytes]) -> bytes | None:
    """A report part's body (the fields of RFC 3464's per-message and per-recipient
    groups) changed by ``change(body, eol)``, when it is not transfer-encoded."""
    cte = str(entity.fields.get("content-transfer-encoding", "")).strip().lower()
    if cte not in _IDENTITY:
        return None
    body = change(entity.body, entity.eol)
    return None if body == entity.body else entity.head + entity.blank + body


def _in_reports(raw: bytes, change: Callable[[bytes, bytes], bytes]) -> bytes | None:
    def leaf(entity: Entity, top: bool) -> bytes | None:
        if top or entity.fields.get_content_type() not in REPORT_LEAVES:
            return None
        return _report_fields(entity, change)

    return rewrite_leaves(raw, leaf)


def _top_and_reports(
    raw: bytes,
    head_change: Callable[[bytes, bytes], bytes],
    body_change: Callable[[bytes, bytes], bytes],
) -> bytes | None:
    top = _top(raw)
    if top is None:
        return None
    new_head = head_change(top.head, top.eol)
    changed = bytes(Entity(new_head, top.blank, top.body))
    inner = _in_reports(changed, body_change)
    return _guarded(raw, inner if inner is not None else changed)


# --- the transformations ------------------------------------------------------------------


def to_crlf(raw: bytes) -> bytes | None:
    """Every line ended by CRLF. RFC 5322 section 2.1 and RFC 5321 section 2.3.8: a mail's
    lines end with CRLF; a mail stored with bare LF (mbox, a file) means the same. Not for a
    mail with a binary part (RFC 3030), whose bytes are not lines."""
    if _has_binary(raw):
        return None
    return _guarded(raw, re.sub(rb"\r?\n", b"\r\n", raw))


def to_lf(raw: bytes) -> bytes | None:
    """Every CRLF a bare LF: the same mail as a local file stores it (the converse of
    ``to_crlf``)."""
    if _has_binary(raw):
        return None
    return _guarded(raw, raw.replace(b"\r\n", b"\n"))


def _has_binary(raw: bytes) -> bool:
    return re.search(rb"(?im)^content-transfer-encoding:[ \t]*binary", raw) is not None


def _reencode(entity: Entity, top: bool, encoding: str) -> bytes | None:
    """A text/* leaf part re-encoded (RFC 2045 section 6: the decoded content is the same
    whatever the transfer encoding; the charset parameter is kept as it came)."""
    fields = entity.fields
    if fields.get_content_maintype() != "text":
        return None
    cte = str(fields.get("content-transfer-encoding", "")).strip().lower() or "7bit"
    if cte not in _ENCODINGS or cte == encoding or cte == "binary":
        return None
    part = email.message_from_bytes(bytes(entity))
    content = part.get_payload(decode=True)
    if not isinstance(content, bytes) or not content.strip():
        return None
    eol = entity.eol
    if encoding == "base64":
        encoded = base64.encodebytes(content).replace(b"\n", eol)
    else:
        encoded = binascii.b2a_qp(content, quotetabs=False, istext=True)
        if eol == b"\r\n" and b"\r\n" not in encoded:
            encoded = encoded.replace(b"\n", b"\r\n")
    head = b"".join(
        f
        for f in _fields(entity.head + eol)
        if not f.lower().startswith(b"content-transfer-encoding:")
    )
    if top and "mime-version" not in fields:
        head += b"MIME-Version: 1.0" + eol
    head += f"Content-Transfer-Encoding: {encoding}".encode() + eol
    new = head[: -len(eol)] + entity.blank + encoded
    after = email.message_from_bytes(new).get_payload(decode=True)
    return new if after == content else None


def quoted_printable(raw: bytes) -> bytes | None:
    """Each text/* part of the notice (not of the returned message) re-encoded
    quoted-printable (RFC 2045 section 6.7)."""
    return _guarded(raw, rewrite_leaves(raw, lambda e, t: _reencode(e, t, "quoted-printable")))


def base64_text(raw: bytes) -> bytes | None:
    """Each text/* part of the notice re-encoded base64 (RFC 2045 section 6.8)."""
    return _guarded(raw, rewrite_leaves(raw, lambda e, t: _reencode(e, t, "base64")))


def names_upper(raw: bytes) -> bytes | None:
    """The field names of the top-level header and of the report's field groups in upper
    case (RFC 5322 section 1.2.2 and RFC 3464 section 2.1.1: field names are
    case-insensitive)."""
    return _top_and_reports(
        raw,
        lambda head, eol: _with_field_names(head, bytes.upper),
        lambda body, eol: _with_field_names(body, bytes.upper),
    )


def names_lower(raw: bytes) -> bytes | None:
    """The same field names in lower case."""
    return _top_and_reports(
        raw,
        lambda head, eol: _with_field_names(head, bytes.lower),
        lambda body, eol: _with_field_names(body, bytes.lower),
    )


def fold_long_fields(raw: bytes) -> bytes | None:
    """Fields longer than 78 characters, of the top-level header and of the report's groups,
    folded at white space (RFC 5322 section 2.1.1's line length, section 2.2.3's folding;
    RFC 3464 section 2.1.1's fields are folded as a header's)."""
    return _top_and_reports(
        raw,
        lambda head, eol: _fold_head(head, 78, eol),
        lambda body, eol: _fold_report(body, 78, eol),
    )


def _fold_report(body: bytes, width: int, eol: bytes) -> bytes:
    """Each group of a report's fields (blocks between blank lines) folded as a header."""
    blocks = re.split(rb"(\r?\n(?:[ \t]*\r?\n)+)", body)
    out = []
    for i, block in enumerate(blocks):
        if i % 2 or not _FIELD_NAME.match(block):
            out.append(block)
        else:
            out.append(_fold_head(block, width, eol))
    return b"".join(out)


TRACE = (
    b"Received: from relay.example.net (relay.example.net [192.0.2.25])",
    b"\tby mx.example.com (Postfix) with ESMTPS id 4QxT2K1ZqPz9tY",
    b"\tfor <bounces@example.com>; Mon, 07 Dec 2026 06:00:00 +0000 (UTC)",
    b"X-Google-DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.net; s=s1;",
    b"\th=from:to:subject:date:message-id; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;",
    b"\tb=dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ==",
)


def trace_fields(raw: bytes) -> bytes | None:
    """A Received field and a DKIM signature in an X- field put at the top, as a relay on
    the way adds them (RFC 5321 section 4.4: each relay prepends its trace field; RFC 6376
    section 5.6 prepends the signature). Its "for" names the return path, which no notice
    states as a failed recipient."""
    top = _top(raw)
    if top is None:
        return None
    eol = top.eol
    return _guarded(raw, eol.join(TRACE) + eol + raw)


_US_ASCII = re.compile(rb"""(charset[ \t]*=[ \t]*)("?)(us-ascii)("?)""", re.I)


def ascii_as_utf8(raw: bytes) -> bytes | None:
    """A text/plain part of the notice declared us-ascii relabelled utf-8 where its decoded
    content is pure ASCII (RFC 3629: UTF-8 encodes US-ASCII as itself)."""

    def leaf(entity: Entity, top: bool) -> bytes | None:
        fields = entity.fields
        if fields.get_content_type() != "text/plain" or fields.get_content_charset() != "us-ascii":
            return None
        content = email.message_from_bytes(bytes(entity)).get_payload(decode=True)
        if not isinstance(content, bytes) or not content.isascii():
            return None
        head = _US_ASCII.sub(
            lambda m: m.group(1) + m.group(2) + b"utf-8" + m.group(4), entity.head, 1
        )
        return head + entity.blank + entity.body

    return _guarded(raw, rewrite_leaves(raw, leaf))


def mime_preamble(raw: bytes) -> bytes | None:
    """A preamble put before the first part of a top-level multipart (RFC 2046 section 5.1.1:
    the preamble is to be ignored), replacing an empty one, in the words MUAs write there."""
    top = _top(raw)
    if top is None or top.fields.get_content_maintype() != "multipart":
        return None
    boundary = top.fields.get_boundary()
    found = _delimiters(top.body, boundary) if boundary else []
    if not found or top.body[: found[0].start()].strip():
        return None
    eol = top.eol
    preamble = b"This is a MIME-encapsulated message." + eol
    body = preamble + top.body[found[0].start() :].lstrip(b"\r\n")
    return _guarded(raw, top.head + top.blank + body)


def media_type_case(raw: bytes) -> bytes | None:
    """Every Content-Type's type, subtype and parameter names in upper case, in the notice's
    parts (RFC 2045 section 5.1: they are case-insensitive; parameter values are kept)."""

    def change(head: bytes) -> bytes:
        def field(m: re.Match[bytes]) -> bytes:
            value = re.sub(
                rb"^([ \t]*)([^;\s]+)", lambda v: v.group(1) + v.group(2).upper(), m.group(2)
            )
            value = re.sub(
                rb"(;\s*)([!#-'*+.0-9A-Z^-~-]+)(\s*=)",
                lambda v: v.group(1) + v.group(2).upper() + v.group(3),
                value,
            )
            return m.group(1) + value

        return re.sub(rb"(?im)^(content-type:)((?:.*)(?:\r?\n[ \t].*)*)", field, head)

    def leaf(entity: Entity, top: bool) -> bytes | None:
        return None if top else change(entity.head) + entity.blank + entity.body

    top = _top(raw)
    if top is None:
        return None
    changed = change(top.head) + top.blank + top.body
    inner = rewrite_leaves(changed, leaf)
    return _guarded(raw, inner if inner is not None else changed)


def fold_narrow(raw: bytes) -> bytes | None:
    """The same fields folded at every white space past 30 characters of a line: as
    meaning-preserving as ``fold_long_fields`` (any white space of a field may be folded),
    and what a relay with a short line limit writes."""
    return _top_and_reports(
        raw,
        lambda head, eol: _fold_head(head, 30, eol),
        lambda body, eol: _fold_report(body, 30, eol),
    )


_COLON_SPACE = re.compile(rb"^([!-9;-~]+:) ", re.M)


def no_space_after_colon(raw: bytes) -> bytes | None:
    """The one space after a field's colon taken out, in the top-level header and the
    report's groups (RFC 5322 section 2.2: a field is its name, a colon and its body; the
    space is folding white space the body may or may not begin with; RFC 3464 section 2.1.1
    reads its fields by the same rules)."""
    return _top_and_reports(
        raw,
        lambda head, eol: _COLON_SPACE.sub(rb"\1", head),
        lambda body, eol: _COLON_SPACE.sub(rb"\1", body),
    )


def subject_encoded_word(raw: bytes) -> bytes | None:
    """A plain ASCII Subject written as RFC 2047 encoded words (base64, UTF-8), as a mailer
    writes one that needs them: decoded, the same text (RFC 2047 sections 2 and 6.2)."""

    def encoded(name: bytes, value: bytes, eol: bytes) -> bytes | None:
        text = re.sub(rb"\r?\n(?=[ \t])", b"", value).strip()
        if not text or not text.isascii() or b"=?" in text:
            return None
        words = [
            b"=?UTF-8?B?" + base64.b64encode(text[i : i + 36]) + b"?="
            for i in range(0, len(text), 36)
        ]
        return name + b": " + (eol + b" ").join(words) + eol

    return _first_field_rewritten(raw, b"subject", encoded)


def _first_field_rewritten(
    raw: bytes, wanted: bytes, rewrite: Callable[[bytes, bytes, bytes], bytes | None]
) -> bytes | None:
    """``raw`` with its first top-level field named ``wanted`` (lower case) replaced by what
    ``rewrite(name, value, eol)`` makes of it; None (skipped) where there is no such field or
    ``rewrite`` declines it."""
    top = _top(raw)
    if top is None:
        return None
    eol = top.eol
    out = []
    done = False
    for field in _fields(top.head + eol):
        name, colon, value = field.partition(b":")
        if done or name.strip().lower() != wanted or not colon:
            out.append(field)
            continue
        rewritten = rewrite(name, value, eol)
        if rewritten is None:
            return None
        out.append(rewritten)
        done = True
    if not done:
        return None
    return _guarded(raw, b"".join(out)[: -len(eol)] + top.blank + top.body)


def explicit_default_type(raw: bytes) -> bytes | None:
    """A mail that declares no Content-Type given RFC 2045's default one explicitly
    (section 5.2: "Content-type: text/plain; charset=us-ascii"), where its body is ASCII."""
    top = _top(raw)
    if top is None or "content-type" in top.fields or not top.body.isascii():
        return None
    eol = top.eol
    added = b"Content-Type: text/plain; charset=us-ascii"
    if "mime-version" not in top.fields:
        added = b"MIME-Version: 1.0" + eol + added
    return _guarded(raw, top.head + eol + added + top.blank + top.body)


def boundary_renamed(raw: bytes) -> bytes | None:
    """The top-level multipart's boundary replaced by another that occurs nowhere in the
    mail (RFC 2046 section 5.1.1: the boundary only delimits the parts)."""
    top = _top(raw)
    if top is None or top.fields.get_content_maintype() != "multipart":
        return None
    boundary = top.fields.get_boundary()
    if not boundary:
        return None
    found = _delimiters(top.body, boundary)
    fresh = b"=_r73_boundary_7f3a9c"
    if not found or fresh in raw or not boundary.isascii():
        return None
    old = boundary.encode()
    head, count = re.subn(
        rb'(boundary[ \t]*=[ \t]*)"?' + re.escape(old) + rb'"?',
        lambda m: m.group(1) + b'"' + fresh + b'"',
        top.head,
        flags=re.I,
    )
    if count != 1:
        return None
    body = bytearray()
    at = 0
    for match in found:
        body += top.body[at : match.start()]
        body += match.group(0).replace(b"--" + old, b"--" + fresh, 1)
        at = match.end()
    body += top.body[at:]
    return _guarded(raw, head + top.blank + bytes(body))


def _in_returned_head(raw: bytes, change: Callable[[bytes, bytes], bytes]) -> bytes | None:
    """The header of the returned message (a message/rfc822 part's, or the fields of a
    text/rfc822-headers part) changed by ``change(head, eol)``; its body is left as it came."""

    def leaf(entity: Entity, top: bool) -> bytes | None:
        if top or entity.fields.get_content_type() not in RETURNED:
            return None
        cte = str(entity.fields.get("content-transfer-encoding", "")).strip().lower()
        if cte not in _IDENTITY:
            return None
        inner = split_entity(entity.body)
        if inner is None:
            if not _FIELD_NAME.match(entity.body):
                return None
            stripped = entity.body.rstrip(b"\r\n")
            inner = Entity(stripped, entity.body[len(stripped) :], b"")
        head = change(inner.head, entity.eol)
        return entity.head + entity.blank + head + inner.blank + inner.body

    return _guarded(raw, rewrite_leaves(raw, leaf))


def returned_names_upper(raw: bytes) -> bytes | None:
    """The returned message's field names in upper case (RFC 5322 section 1.2.2)."""
    return _in_returned_head(raw, lambda head, eol: _with_field_names(head, bytes.upper))


def returned_fold_narrow(raw: bytes) -> bytes | None:
    """The returned message's fields folded at white space past 30 characters of a line
    (RFC 5322 section 2.2.3)."""
    return _in_returned_head(raw, lambda head, eol: _fold_head(head, 30, eol))


def mime_epilogue(raw: bytes) -> bytes | None:
    """Words after the top-level multipart's close delimiter (RFC 2046 section 5.1.1: the
    epilogue is to be ignored), where it has none."""
    top = _top(raw)
    if top is None or top.fields.get_content_maintype() != "multipart":
        return None
    boundary = top.fields.get_boundary()
    found = _delimiters(top.body, boundary) if boundary else []
    if not found or not found[-1].group(1) or top.body[found[-1].end() :].strip():
        return None
    eol = top.eol
    body = top.body[: found[-1].end()] + eol + eol + b"End of MIME message." + eol
    return _guarded(raw, top.head + top.blank + body)


_PASS_CHARSETS = frozenset({"utf-8", "us-ascii", "ascii"})


def charset_to_utf8(raw: bytes) -> bytes | None:
    """A text/* part of the notice in another charset (ISO-2022-JP, ISO-8859-1, UTF-7...)
    transcoded to UTF-8, relabelled, and sent base64 (RFC 2046 section 4.1.2: the charset
    names how octets map to characters; the characters are the same)."""

    def leaf(entity: Entity, top: bool) -> bytes | None:
        fields = entity.fields
        charset = fields.get_content_charset()
        if fields.get_content_maintype() != "text" or not charset or charset in _PASS_CHARSETS:
            return None
        content = email.message_from_bytes(bytes(entity)).get_payload(decode=True)
        if not isinstance(content, bytes):
            return None
        try:
            text = content.decode(charset)
        except (LookupError, UnicodeError, ValueError):
            return None
        if text.encode("utf-8") == content:
            return None
        eol = entity.eol
        encoded = base64.encodebytes(text.encode("utf-8")).replace(b"\n", eol)
        head = b"".join(
            re.sub(rb"(?i)(charset[ \t]*=[ \t]*)\"?[^\";\s]+\"?", rb"\1utf-8", f, count=1)
            if f.lower().startswith(b"content-type:")
            else f
            for f in _fields(entity.head + eol)
            if not f.lower().startswith(b"content-transfer-encoding:")
        )
        head += b"Content-Transfer-Encoding: base64" + eol
        new = head[: -len(eol)] + entity.blank + encoded
        after = email.message_from_bytes(new)
        if (
            after.get_content_charset() != "utf-8"
            or after.get_payload(decode=True) != text.encode()
        ):
            return None
        return new

    return _guarded(raw, rewrite_leaves(raw, leaf))


def format_flowed(raw: bytes) -> bytes | None:
    """A text/plain part of the notice sent as format=flowed (RFC 3676): lines longer than
    78 characters broken at a space into soft line breaks (a line ending in a space flows
    into the next), lines that begin with a space, ">" or "From " space-stuffed (section
    4.4). Read as RFC 3676 says, the same lines. Not for a part with a line that already
    ends in a space (it would read as a soft break) or that declares a format."""

    def leaf(entity: Entity, top: bool) -> bytes | None:
        fields = entity.fields
        if fields.get_content_type() != "text/plain" or fields.get_param("format"):
            return None
        cte = str(fields.get("content-transfer-encoding", "")).strip().lower()
        if cte not in _IDENTITY:
            return None
        eol = entity.eol
        lines = entity.body.split(eol)
        if any(line.endswith((b" ", b"\t")) for line in lines):
            return None
        out = []
        for line in lines:
            if line.startswith((b" ", b">", b"From ")):
                line = b" " + line
            while len(line) > 78:
                cut = line.rfind(b" ", 1, 78)
                if cut <= 0:
                    break
                out.append(line[: cut + 1])  # the space stays, ending the line: soft
                line = line[cut + 1 :]
                if line.startswith((b" ", b">", b"From ")):
                    line = b" " + line
            out.append(line)
        head = re.sub(
            rb"(?im)^(content-type:[ \t]*text/plain)",
            rb"\1; format=flowed",
            entity.head,
            count=1,
        )
        if head == entity.head:
            if not top:
                return None
            head += eol + b"Content-Type: text/plain; format=flowed"
            if "mime-version" not in fields:
                head += eol + b"MIME-Version: 1.0"
        body = eol.join(out)
        if body == entity.body and head == entity.head:
            return None
        return head + entity.blank + body

    return _guarded(raw, rewrite_leaves(raw, leaf))


_PHRASE_FROM = re.compile(
    rb"^([ \t]*)([A-Za-z0-9][A-Za-z0-9 .\-]*[A-Za-z0-9.])([ \t]*<[^<>\s]+@[^<>\s]+>[ \t]*)$"
)


def from_name_encoded_word(raw: bytes) -> bytes | None:
    """The From field's display name (a plain ASCII phrase: "Mail Delivery System
    <MAILER-DAEMON@...>") written as an RFC 2047 encoded word, which section 5 allows in a
    phrase: decoded, the same name and the same address."""

    def encoded(name: bytes, value: bytes, eol: bytes) -> bytes | None:
        found = _PHRASE_FROM.match(value.rstrip(b"\r\n"))
        if found is None:
            return None
        word = b"=?UTF-8?Q?" + found.group(2).replace(b" ", b"_") + b"?="
        return name + b":" + found.group(1) + word + found.group(3) + eol

    return _first_field_rewritten(raw, b"from", encoded)


_TRACE_NAMES = frozenset({b"return-path", b"received", b"delivered-to", b"x-original-to"})


def fields_reordered(raw: bytes) -> bytes | None:
    """The top-level fields after the trace block in reverse order (RFC 5322 section 3.6:
    but for trace and resent blocks, fields may come in any order); not for a header that
    repeats a field outside the trace block (which one is "the" field would then change)."""
    top = _top(raw)
    if top is None:
        return None
    eol = top.eol
    fields = list(_fields(top.head + eol))
    names = [f.partition(b":")[0].strip().lower() for f in fields]
    start = 0
    while start < len(fields) and (
        names[start] in _TRACE_NAMES or names[start].startswith(b"from ")
    ):
        start += 1
    rest = names[start:]
    if len(rest) < 2 or len(set(rest)) != len(rest) or any(n in _TRACE_NAMES for n in rest):
        return None
    if any(n.startswith(b"resent-") for n in rest):
        return None
    head = b"".join(fields[:start] + fields[start:][::-1])
    return _guarded(raw, head[: -len(eol)] + top.blank + top.body)


def part_names_upper(raw: bytes) -> bytes | None:
    """The field names of the notice's MIME parts' headers (Content-Type,
    Content-Transfer-Encoding, Content-Description...) in upper case (RFC 2045 section 3:
    field names are case-insensitive, as RFC 5322's)."""

    def leaf(entity: Entity, top: bool) -> bytes | None:
        if top:
            return None
        head = _with_field_names(entity.head, bytes.upper)
        return None if head == entity.head else head + entity.blank + entity.body

    return _guarded(raw, _with_multipart_heads(raw, leaf))


def _with_multipart_heads(raw: bytes, leaf: LeafRewrite) -> bytes | None:
    """``rewrite_leaves``, and the headers of nested multiparts given to ``leaf`` as well."""

    def walk(entity_raw: bytes, top: bool) -> bytes | None:
        entity = split_entity(entity_raw)
        if entity is None:
            return None
        if entity.fields.get_content_maintype() != "multipart":
            return rewrite_leaves(entity_raw, leaf, top=top)
        own = leaf(Entity(entity.head, entity.blank, b""), top)
        head = split_entity(own).head if own is not None else entity.head  # type: ignore[union-attr]
        boundary = entity.fields.get_boundary()
        found = _delimiters(entity.body, boundary) if boundary else []
        if not found:
            return None
        out = [entity.body[: found[0].start()]]
        changed = own is not None
        for i, match in enumerate(found):
            start = _eol_after(entity.body, match.end())
            out.append(entity.body[match.start() : start])
            end = found[i + 1].start() if i + 1 < len(found) else len(entity.body)
            part = entity.body[start:end]
            new = None if match.group(1) else walk(part, False)
            changed |= new is not None
            out.append(part if new is None else new)
        return head + entity.blank + b"".join(out) if changed else None

    return walk(raw, True)


_TOKEN = rb"[!#-'*+.0-9A-Za-z^-~-]+"  # RFC 2045 section 5.1's token
_UNQUOTED_PARAM = re.compile(
    rb"(;[ \t]*(?:\r?\n[ \t]+)?"
    + _TOKEN
    + rb"[ \t]*=[ \t]*)("
    + _TOKEN
    + rb")(?=[ \t]*(?:;|\r?\n|$))"
)


def params_quoted(raw: bytes) -> bytes | None:
    """Every unquoted parameter value of a Content-Type (the top level's and the notice's
    parts') written as a quoted string (RFC 2045 section 5.1: a value is a token or a quoted
    string, the same value either way): ``report-type="delivery-status"``."""

    def change(head: bytes) -> bytes:
        def field(m: re.Match[bytes]) -> bytes:
            return _UNQUOTED_PARAM.sub(lambda v: v.group(1) + b'"' + v.group(2) + b'"', m.group(0))

        return re.sub(rb"(?im)^content-type:.*(?:\r?\n[ \t].*)*", field, head)

    def leaf(entity: Entity, top: bool) -> bytes | None:
        head = change(entity.head)
        return None if head == entity.head else head + entity.blank + entity.body

    return _guarded(raw, _with_multipart_heads(raw, leaf))


_ACTION = re.compile(rb"(?im)^(action[ \t]*:[ \t]*)([a-z]+)")


def action_upper(raw: bytes) -> bytes | None:
    """The report's Action values in upper case ("Action: FAILED"; RFC 3464 section 2.3.3:
    "The action-value may be spelled in any combination of upper and lower case")."""
    return _guarded(
        raw,
        _in_reports(
            raw, lambda body, eol: _ACTION.sub(lambda m: m.group(1) + m.group(2).upper(), body)
        ),
    )


TRANSFORMS: dict[str, Transform] = {
    "to_crlf": to_crlf,
    "to_lf": to_lf,
    "quoted_printable": quoted_printable,
    "base64_text": base64_text,
    "names_upper": names_upper,
    "names_lower": names_lower,
    "fold_long_fields": fold_long_fields,
    "trace_fields": trace_fields,
    "ascii_as_utf8": ascii_as_utf8,
    "mime_preamble": mime_preamble,
    "media_type_case": media_type_case,
    "fold_narrow": fold_narrow,
    "no_space_after_colon": no_space_after_colon,
    "subject_encoded_word": subject_encoded_word,
    "explicit_default_type": explicit_default_type,
    "boundary_renamed": boundary_renamed,
    "returned_names_upper": returned_names_upper,
    "returned_fold_narrow": returned_fold_narrow,
    "mime_epilogue": mime_epilogue,
    "charset_to_utf8": charset_to_utf8,
    "format_flowed": format_flowed,
    "from_name_encoded_word": from_name_encoded_word,
    "fields_reordered": fields_reordered,
    "part_names_upper": part_names_upper,
    "params_quoted": params_quoted,
    "action_upper": action_upper,
}


# --- the measurement ----------------------------------------------------------------------

Answer = tuple[str, tuple[tuple[str, int, str], ...]]


def answer(raw: bytes) -> Answer:
    """What the classifier says of a mail: its kind, and each recipient's status and
    delivery (failed or deferred); for a mail that is no bounce, the addresses it names."""
    from postline.bounce.mail import Kind
    from postline.bounce.verdicts import classify_mail

    report, verdicts = classify_mail(raw)
    if report.kind is Kind.BOUNCE:
        found = {(v.recipient.lower(), v.status, v.delivery) for v in verdicts}
    elif report.kind is Kind.FEEDBACK:
        found = {(r.lower(), 0, "") for r in report.feedback_recipients}
    else:
        found = {(r.recipient.lower(), 0, "") for r in report.recipients}
    return str(report.kind), tuple(sorted(found))


def labelled_hits(got: Answer, rows: list[dict[str, object]]) -> int:
    """How many of a mail's labelled rows an answer gets right (kind, and status where the
    row has one), to tell a change for the worse from one for the better."""
    kind, found = got
    by_rcpt = {r: s for r, s, _ in found}
    hits = 0
    labelled = [r for r in rows if r["mapped_status"] is not None]
    for row in rows:
        bounce = row["mapped_status"] is not None
        hits += bounce == (kind == "bounce")
        if not bounce:
            continue
        status = by_rcpt.get(str(row["recipient"] or "").lower())
        if status is None and len(labelled) == 1 and len(found) == 1:
            status = found[0][1]
        hits += status == row["mapped_status"]
    return hits


def _show(got: Answer) -> str:
    kind, found = got
    return f"{kind} " + (", ".join(f"{r} {s} {d}".rstrip() for r, s, d in found) or "-")


Rename = Callable[[str], str]
# A rewrite as ``measure`` applies it: given a mail and its labelled recipients, the mail
# rewritten and how an address the classifier answered reads afterwards (round 74 renames
# names; round 73's transformations rename nothing), or None (skipped).
Rewrite = Callable[[bytes, Sequence[str]], tuple[bytes, Rename] | None]


def _same_names(address: str) -> str:
    return address


def transform_rewrite(transform: Transform) -> Rewrite:
    """A transformation of round 73 as a rewrite: the addresses read as they were."""

    def rewrite(raw: bytes, recipients: Sequence[str]) -> tuple[bytes, Rename] | None:
        changed = transform(raw)
        return None if changed is None else (changed, _same_names)

    return rewrite


def renamed(got: Answer, rename: Rename) -> Answer:
    """An answer with its addresses as a rewrite renamed them."""
    kind, found = got
    return kind, tuple(sorted((rename(r), s, d) for r, s, d in found))


def _what_changed(before: Answer, after: Answer) -> str:
    """ "kind" (bounce or not), "recipients" (other addresses), else "status" (a recipient's
    status or delivery)."""
    if before[0] != after[0]:
        return "kind"
    if {r for r, _, _ in before[1]} != {r for r, _, _ in after[1]}:
        return "recipients"
    return "status"


COLUMNS = ("applied", "skipped", "changed", "kind", "recipients", "status", "worse", "better")


def measure(
    name: str,
    base: Path,
    rows: list[dict[str, object]],
    rewrites: dict[str, Rewrite],
    listed: bool,
) -> dict[str, dict[str, int]]:
    """Each rewrite over each mail of a set: applied, skipped, changed (of which the kind,
    the recipients or a status; worse, better); the changed mails listed with both answers
    when ``listed``."""
    by_file: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_file.setdefault(str(row["file"]), []).append(row)
    figures = {t: dict.fromkeys(COLUMNS, 0) for t in rewrites}
    lines = []
    for file, labels in sorted(by_file.items()):
        raw = (base / file).read_bytes()
        before = answer(raw)
        recipients = [str(r["recipient"]) for r in labels if r.get("recipient")]
        for tname, rewrite in rewrites.items():
            counts = figures[tname]
            done = rewrite(raw, recipients)
            if done is None:
                counts["skipped"] += 1
                continue
            changed, rename = done
            counts["applied"] += 1
            after = answer(changed)
            expected = renamed(before, rename)
            if after == expected:
                continue
            counts["changed"] += 1
            counts[_what_changed(expected, after)] += 1
            delta = labelled_hits(renamed(after, _unrename(rename, before, after)), labels) - (
                labelled_hits(before, labels)
            )
            counts["worse"] += delta < 0
            counts["better"] += delta > 0
            how = "worse" if delta < 0 else "better" if delta > 0 else "differs"
            lines.append(
                f"CHANGED {name} {tname} {file} ({how}):\n"
                f"    before {_show(expected)}\n    after  {_show(after)}"
            )
    if listed:
        print("\n".join(lines))
    return figures


def _unrename(rename: Rename, before: Answer, after: Answer) -> Rename:
    """The way back for the addresses a rename made of ``before``'s (to score ``after``
    against the labels, which name the addresses as they were)."""
    back = {rename(r): r for r, _, _ in before[1]}
    return lambda address: back.get(address, address)


def add_set_arguments(parser: argparse.ArgumentParser) -> None:
    """The sets' options, shared by round 74's ``entities.py``."""
    from run import DEFAULT_CORPUS, GENERATED_ENV
    from wider_corpus import corpus_dir

    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--wider", type=Path, default=corpus_dir())
    parser.add_argument(
        "--generated",
        type=Path,
        default=Path(os.environ[GENERATED_ENV]) if os.environ.get(GENERATED_ENV) else None,
    )
    parser.add_argument(
        "--unseen-changes",
        action="store_true",
        help="also list the unseen sets' changed mails (counted always; listed only by name, "
        "as run.py's --unseen-misses)",
    )


def labelled_sets(
    args: argparse.Namespace,
) -> list[tuple[str, Path, list[dict[str, object]], bool]]:
    """(name, folder, labelled rows, whether its changes are listed) of each set there is."""
    from run import by_split, generated_labels, read_labels
    from wider_corpus import labels as wider_labels

    sets: list[tuple[str, Path, list[dict[str, object]], bool]] = []
    shared = args.corpus / "sisimai"
    if (shared / "labels.jsonl").exists():
        sets.append(("shared", shared, read_labels(shared / "labels.jsonl"), True))
    if args.wider is not None and args.wider.is_dir():
        for split, part in by_split(wider_labels()).items():
            sets.append(
                (f"wider-{split}", args.wider, part, split != "unseen" or args.unseen_changes)
            )
    if args.generated is not None and (args.generated / "labels.jsonl").exists():
        for split, part in by_split(generated_labels(args.generated)).items():
            sets.append(
                (
                    f"generated-{split}",
                    args.generated,
                    part,
                    split != "unseen" or args.unseen_changes,
                )
            )
    return sets


def print_table(results: dict[str, dict[str, dict[str, int]]]) -> None:
    print(f"{'set':<18} {'transform':<18} " + " ".join(f"{c:>8}" for c in COLUMNS))
    for name, figures in results.items():
        for tname, c in figures.items():
            print(f"{name:<18} {tname:<18} " + " ".join(f"{c[k]:>8}" for k in COLUMNS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_arguments(parser)
    parser.add_argument("--transform", action="append", choices=sorted(TRANSFORMS))
    args = parser.parse_args()
    names = args.transform or list(TRANSFORMS)
    chosen = {n: transform_rewrite(TRANSFORMS[n]) for n in names}
    results = {
        name: measure(name, base, rows, chosen, listed)
        for name, base, rows, listed in labelled_sets(args)
    }
    print_table(results)


if __name__ == "__main__":
    main()
