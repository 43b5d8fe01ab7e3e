"""A bounce mail -> what it reports (its kind, each failed recipient, the returned original).

Steps, each able to settle the answer:
  1. feedback reports (ARF, RFC 5965) and provider complaint formats: not bounces;
  2. JSON notifications (Amazon SES over SNS);
  3. RFC 3464 delivery-status fields, wherever the MTA put them;
  4. auto-replies (RFC 3834) and other mail that is no bounce at all;
  5. the notice's text, by the vendor patterns of ``rules/mail_formats.yaml``;
the text also completes what the report fields leave out (many MTAs put the remote server's
reply only in the text).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.errors import MessageError

from postline.bounce.classify import is_temporary
from postline.bounce.mail.jsonnotice import parse_json_notice
from postline.bounce.mail.mime import (
    Parts,
    header_fields_of,
    headers_of,
    message_headers,
    read_message,
)
from postline.bounce.mail.model import BounceReport, FailedRecipient, Kind, OriginalMessage
from postline.bounce.mail.replies import reply_of
from postline.bounce.mail.rfc3464 import (
    DsnRecipient,
    DsnReport,
    parse_fields,
    queued_hours,
    typed_address,
)
from postline.bounce.mail.signs import mail_signs
from postline.bounce.mail.textformat import (
    addresses_in,
    flatten_reply,
    mail_formats,
    text_recipients,
    transcript_stages,
)

MAX_NOTICE = 64 * 1024
MAX_REFUSAL = 1024  # characters of a disposition notification's text read as its refusal's words
_DONE_ACTIONS = frozenset({"delivered", "relayed", "expanded", "deliverable"})
_FEEDBACK_FIELD = re.compile(
    r"^(Feedback-Type|Original-Rcpt-To|Removal-Recipient)\s*:\s*(.+)$", re.I | re.M
)


def parse_bounce(raw: bytes, *, depth: int = 0) -> BounceReport:
    message = read_message(raw)
    headers = message_headers(message)
    parts = Parts(message)
    report = _parse(headers, parts, depth)
    if report.kind is Kind.BOUNCE:
        _apply_hints(report, headers, parts.notice)
        _envelope_recipient(report)
    return report


def _apply_hints(report: BounceReport, headers: dict[str, str], notice: str) -> None:
    reporter = ""
    for hint in mail_formats().hints:
        if hint.reads_notice_only and not any(hint.about(r) for r in report.recipients):
            # It would change no recipient: its search of the whole notice is left out.
            continue
        if hint.applies(headers, notice):
            if hint.own_domain and not reporter:
                reporter = _host_of(headers.get("from", ""))
            for r in report.recipients:
                if hint.about(r, reporter):
                    r.hint = r.hint or hint.reason
                    r.command = r.command or hint.command


def _host_of(from_header: str) -> str:
    """The domain of a From header's address (``Mailer-Daemon@mx.example.org``)."""
    found = addresses_in(from_header)
    return found[-1].rpartition("@")[2].lower() if found else ""


def _parse(headers: dict[str, str], parts: Parts, depth: int) -> BounceReport:
    original = _original(parts)
    signs = mail_signs()

    feedback = _feedback(parts, headers, original)
    if feedback is not None:
        return feedback

    json_report = parse_json_notice(parts.notice[:MAX_NOTICE]) if parts.notice else None
    if json_report is not None:
        if not json_report.original.headers.get("message-id"):
            json_report.original = original
        return json_report

    formats = mail_formats()
    # What a notice says is at its start; a huge one (a bounce quoting a whole message in
    # its text) must not make every pattern scan megabytes.
    notice, returned = formats.split_original(parts.notice[:MAX_NOTICE])
    if not original.headers and returned:
        found = headers_of(returned)
        trail = _local_trail(header_fields_of(returned)) if _has_trail(found) else ()
        original = OriginalMessage(found, delivered_to=trail)
    exclude = _not_recipients(headers) | _senders(original)

    dsn_text = "\n\n".join(text for ctype, text in parts.reports if "delivery-status" in ctype)
    report = parse_fields(dsn_text) if dsn_text else None
    if report is None or not report.recipients:
        # Some MTAs write the report fields into the text part.
        inline = parse_fields(notice) if signs.has_dsn_fields(notice) else None
        if inline is not None and inline.recipients:
            report = inline
    if report is None or not report.recipients:
        refusal = _refusal_notification(parts, notice)
        if refusal is not None:
            report = refusal

    if report is not None and report.recipients:
        arrival = report.message_fields.get("arrival-date", "")
        recipients = []
        for dsn in report.recipients:
            if dsn.address:
                recipient = _from_dsn(dsn, original)
                _with_program_output(recipient, dsn, notice)
                if (
                    arrival
                    and recipient.action == "failed"
                    and is_temporary(recipient.reply_code, recipient.status)
                ):
                    # Only a final failure of a temporary reply asks how long it was held.
                    until = dsn.fields.get("last-attempt-date") or headers.get("date", "")
                    recipient.queued_hours = queued_hours(arrival, until)
                recipients.append(recipient)
        if recipients:
            for recipient in recipients:
                _qualified(recipient, original, bool(report.message_fields.get("reporting-mta")))
            in_text = text_recipients(notice, exclude) if notice.strip() else []
            if len(report.recipients) == 1 and not report.recipients[0].original_address:
                _sent_to_per_text(recipients[0], in_text, original)
                _accepted_for(recipients[0], original, _mta_name(report.message_fields))
            _complete_from_text(recipients, in_text)
            _stage_from_transcript(recipients, notice)
            if all(r.action in _DONE_ACTIONS for r in recipients):
                return BounceReport(Kind.DELIVERED, recipients, original)
            failed = [r for r in recipients if r.action not in _DONE_ACTIONS]
            return BounceReport(Kind.BOUNCE, _dedupe(failed), original)

    inner = _inner_bounce(parts, returned, depth)
    if inner is not None:
        return inner

    if signs.is_autoreply(headers, notice) or signs.is_challenge(notice):
        return BounceReport(
            Kind.AUTOREPLY, [FailedRecipient(recipient=a) for a in _from_addresses(headers)]
        )
    if signs.is_list_mail(headers) or not signs.looks_like_bounce(headers, notice):
        return BounceReport(Kind.UNKNOWN, original=original)

    listed = text_recipients(notice, exclude)
    recipients = [r for r in listed if r.action not in _DONE_ACTIONS]
    if listed and not recipients:
        # Every address the notice lists is under a "delivered" heading: a receipt.
        return BounceReport(Kind.DELIVERED, listed, original)
    if not recipients:
        recipients = _fallback_recipients(headers, original, exclude, notice)
        text = " ".join(notice.split())
        for r in recipients:
            r.diagnostic = text
            r.reply_code, r.status = reply_of(text)
            r.command = formats.command(text)
    if signs.is_delay(headers, _own_words(notice, listed)):
        # A delay notice, except for the recipients a section of it says failed.
        for r in recipients:
            if r.listed_as != "failed":
                r.action = "delayed"
    return BounceReport(Kind.BOUNCE if recipients else Kind.UNKNOWN, recipients, original)


def _refusal_notification(parts: Parts, notice: str) -> DsnReport | None:
    """The recipients of a message disposition notification (RFC 8098) whose fields state a
    refusal (``verdict_fields`` in rules/mail_formats.yaml: RFC 5429's Sieve reject, an
    automatic action's "deleted"), with the notice's words as their diagnostic (the form has
    no field for one); ``None`` for a reading's notice, which states none."""
    text = "\n\n".join(t for ctype, t in parts.reports if "disposition-notification" in ctype)
    if not text:
        return None
    report = parse_fields(text)
    report.recipients = [r for r in report.recipients if mail_formats().verdict(r.fields)]
    words = " ".join(notice[:MAX_REFUSAL].split())
    for recipient in report.recipients:
        recipient.fields.setdefault("diagnostic-code", words)
    return report if report.recipients else None


def _own_words(notice: str, listed: list[FailedRecipient]) -> str:
    """The notice without the remote servers' replies its recipients' lines quote: a
    reply's words ("temporarily deferred", "try again later") tell how that server answered
    one attempt, not whether the reporting MTA still tries (Postfix's failure notice of
    Yahoo's "421 4.7.0 [TSS04] ... temporarily deferred" is final)."""
    flat = " ".join(notice.split())
    for r in listed:
        if not r.reply_code:
            continue
        reply = re.search(rf"(?<!\d){r.reply_code}(?=[ -])", r.diagnostic)
        if reply is not None:
            flat = flat.replace(r.diagnostic[reply.start() :], " ")
    return flat


def _inner_bounce(parts: Parts, returned: str, depth: int) -> BounceReport | None:
    """A bounce that returns another bounce (a relay forwarding a DSN it got): read that one."""
    if depth > 0:
        return None
    inner_headers: dict[str, str]
    try:
        if parts.original is not None:
            inner_headers = message_headers(parts.original)
            looks = mail_signs().looks_like_bounce(inner_headers, "")
            raw = parts.original.as_bytes() if looks else b""
        else:
            inner_headers = headers_of(returned) if returned else {}
            looks = bool(inner_headers) and mail_signs().looks_like_bounce(inner_headers, "")
            raw = returned.lstrip().encode("utf-8", "replace") if looks else b""
        if not raw:
            return None
        report = parse_bounce(raw, depth=depth + 1)
    except (ValueError, LookupError, UnicodeError, TypeError, MessageError):
        # The returned message cannot be written back or read (broken charsets or
        # encodings): the outer notice is classified on its own.
        return None
    return report if report.kind is Kind.BOUNCE and report.recipients else None


def _bare(address: str) -> str:
    return address.replace('"', "").lower()


def sent_to(recipient: DsnRecipient, original: OriginalMessage) -> str:
    """The address the mail was sent to, which is the one to report.

    An alias or a forwarding makes the Final-Recipient another address than the one the
    sender used; RFC 3464 keeps that one as the Original-Recipient. The returned message's
    headers settle it when they name one of the two; else the Original-Recipient wins."""
    final = recipient.address
    first = recipient.original_address
    if not first or "." not in first.rpartition("@")[2] or _bare(first) == _bare(final):
        return final
    named = _bare(" ".join(original.get(h) for h in ("to", "cc", "x-original-to")))
    if _bare(final) in named and _bare(first) not in named:
        return final
    return first


def _sent_to_per_text(
    recipient: FailedRecipient, in_text: list[FailedRecipient], original: OriginalMessage
) -> None:
    """The address sent to when the report names only another one.

    RFC 3464 (section 2.3.1) keeps the address the sender used as the Original-Recipient
    when an alias or a virtual table rewrote it; an MTA that writes no Original-Recipient
    reports only the rewritten Final-Recipient. When the notice's own text lists exactly one
    other address and the returned message was sent to that one (its To, Cc or
    X-Original-To) and not to the Final-Recipient, the text's address is the one the mail
    was sent to: it is reported, the report's kept as the final recipient."""
    if len(in_text) != 1 or _bare(in_text[0].recipient) == _bare(recipient.recipient):
        return
    named = _bare(" ".join(original.get(h) for h in ("to", "cc", "x-original-to")))
    address = in_text[0].recipient
    if _bare(address) in named and _bare(recipient.recipient) not in named:
        recipient.final_recipient, recipient.recipient = recipient.recipient, address


def _from_dsn(dsn: DsnRecipient, original: OriginalMessage) -> FailedRecipient:
    address, action, status = sent_to(dsn, original), dsn.action, dsn.status
    dtype, diagnostic = dsn.diagnostic
    diagnostic = flatten_reply(diagnostic)
    code, found = reply_of(diagnostic)
    if code and mail_formats().own_failure(diagnostic):
        code = 0  # the reporting MTA's own words in a reply's form (own_failures)
    return FailedRecipient(
        recipient=address,
        action=action if action else ("delayed" if status.startswith("4.") else "failed"),
        status=preferred_status(status, found),
        reply_code=code,
        diagnostic=diagnostic,
        diagnostic_type=dtype,
        command=mail_formats().command(diagnostic),
        remote_mta=dsn.remote_mta,
        hint=mail_formats().verdict(dsn.fields),
        final_recipient=dsn.address if _bare(dsn.address) != _bare(address) else "",
    )


def _with_program_output(recipient: FailedRecipient, dsn: DsnRecipient, notice: str) -> None:
    """A local program's exit status given alone as the diagnostic ("X-Unix; 77") joined by
    what the program said, from the notice's transcript (``program_transcript``): the lines
    before the reporting MTA's own line naming the program's command (X-Actual-Recipient)."""
    pattern = mail_formats().program_transcript
    if (
        pattern is None
        or recipient.diagnostic_type.lower() != "x-unix"
        or not recipient.diagnostic.strip().isdigit()
    ):
        return
    kind, _, command = dsn.fields.get("x-actual-recipient", "").partition(";")
    command = command.strip()
    if kind.strip().lower() != "x-unix" or not command.startswith("|"):
        return
    said: list[str] = []
    inside = False
    for line in notice.splitlines():
        if pattern.search(line):
            inside, said = True, []
        elif not inside:
            continue
        elif f'"{command}"' in line:
            if said:
                recipient.diagnostic = f"{recipient.diagnostic.strip()} {' '.join(said)}"
            return
        elif '"|' in line:
            said = []  # another program's line: what came before was that one's
        elif line.strip():
            said.append(line.strip())


def _complete_from_text(recipients: list[FailedRecipient], in_text: list[FailedRecipient]) -> None:
    """Fill what the report fields leave out from the notice's text about the same address
    (``in_text``: the recipients the notice's lines state)."""
    if not in_text:
        return
    by_address = {r.recipient.lower(): r for r in in_text}
    for r in recipients:
        found = by_address.get(r.recipient.lower())
        if found is None and len(recipients) == 1 and len(by_address) == 1:
            found = next(iter(by_address.values()))
        if found is None:
            continue
        if not r.diagnostic or (not r.reply_code and found.reply_code):
            if found.diagnostic:
                r.diagnostic = (
                    found.diagnostic if not r.diagnostic else (f"{r.diagnostic} {found.diagnostic}")
                )
        r.reply_code = r.reply_code or found.reply_code
        r.status = preferred_status(r.status, found.status)
        r.command = r.command or found.command


def _stage_from_transcript(recipients: list[FailedRecipient], notice: str) -> None:
    """The SMTP command a recipient's reply answered, when its diagnostic names none and
    is one of the notice's transcript's replies (``transcript_stages``): Sendmail's report
    of a refused MAIL FROM gives the reply alone in Diagnostic-Code, and its transcript the
    command it answered, as Postfix ("in reply to MAIL FROM command") and Exim ("after MAIL
    FROM:<s@x>") state it in the diagnostic itself."""
    if not any(not r.command and r.reply_code for r in recipients):
        return
    stages = transcript_stages(notice)
    if not stages:
        return
    for r in recipients:
        if not r.command and r.reply_code:
            r.command = stages.get(r.diagnostic.lower(), "")


def preferred_status(reported: str, in_text: str) -> str:
    """The report's Status, unless it says only the class (x.0.0) and the text says more."""
    if not reported:
        return in_text
    if in_text and reported.endswith(".0.0") and not in_text.endswith(".0.0"):
        return in_text
    return reported


def _dedupe(recipients: list[FailedRecipient]) -> list[FailedRecipient]:
    seen: dict[str, FailedRecipient] = {}
    for r in recipients:
        seen.setdefault(r.recipient.lower(), r)
    return list(seen.values())


def _original(parts: Parts) -> OriginalMessage:
    if parts.original is not None:
        received = [str(v) for v in parts.original.get_all("received") or []]
        headers = message_headers(parts.original)
        fields = parts.original.items() if _has_trail(headers) else []
        received_for, received_by = _envelope(received)
        return OriginalMessage(
            headers,
            received_for,
            _local_trail((str(k), str(v)) for k, v in fields),
            received_by=received_by,
        )
    if parts.original_text:
        received = _RECEIVED.findall(parts.original_text.split("\n\n", 1)[0][:MAX_NOTICE])
        found = headers_of(parts.original_text)
        trail = (
            _local_trail(header_fields_of(parts.original_text[:MAX_NOTICE]))
            if _has_trail(found)
            else ()
        )
        received_for, received_by = _envelope(received)
        return OriginalMessage(found, received_for, trail, received_by=received_by)
    return OriginalMessage()


_MAX_HOPS = 64  # RFC 5321 section 6.3: a loop is assumed after about 100 hops; mail has few
MAX_HEADER = 2048
_RECEIVED = re.compile(r"^Received:((?:.*)(?:\r?\n[ \t].*)*)", re.I | re.M)
_FOR = re.compile(r"\bfor\s+<?([^\s<>;@]{1,256}@[^\s<>;]{1,255}?)>?\s*(?:;|$|\()", re.I)


_BY = re.compile(r"\bby\s+([^\s;()<>\[\]]+)", re.I)
_COMMENT = re.compile(r"\([^()]*\)")


def _envelope(received: list[str]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """The address each Received header names ("for <x>"), latest first, and the same
    with the host that wrote the header ("by mx.example.org ... for <x>": comments such as
    "(Authenticated sender: x)" skipped), where it names one."""
    if len(received) > _MAX_HOPS:
        return (), ()  # no real path is this long; a crafted one is not read
    addresses: list[str] = []
    by: list[tuple[str, str]] = []
    for value in received:
        flat = " ".join(value[:MAX_HEADER].split())
        found = _FOR.search(flat)
        if found is None:
            continue
        address = found.group(1).lower()
        addresses.append(address)
        host = _BY.search(_COMMENT.sub(" ", flat))
        if host is not None:
            by.append((host.group(1).lower().rstrip("."), address))
    return tuple(addresses), tuple(by)


def _has_trail(headers: dict[str, str]) -> bool:
    """Whether a returned message's headers hold a field of ``_local_trail``."""
    return any(name in headers for name in mail_formats().local_trail_fields)


def _local_trail(fields: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The Delivered-To addresses a returned message's destination wrote, latest first.

    qmail-local(8) writes a Delivered-To line at each local delivery, a forwarding or an
    alias included (and bounces a message that already has its line: a loop), and Postfix's
    local(8) does so too; XMail writes X-Deliver-To on a copy its mailproc.tab redirects
    (round 54; ``local_trail_fields`` in rules/mail_formats.yaml). Only the
    lines above the first Received header of a hop between hosts ("from x by y") are the
    destination's own: those below it belong to the message's earlier life (a message
    resent as it was received keeps its old ones)."""
    trail: list[str] = []
    names = mail_formats().local_trail_fields
    for name, value in fields:
        lowered = name.lower()
        if lowered == "received" and value.lstrip().lower().startswith("from "):
            break
        if lowered in names:
            found = addresses_in(value[:MAX_HEADER])
            if found:
                trail.append(found[0].lower())
            if len(trail) > _MAX_HOPS:
                return ()
    return tuple(trail)


def _trail_path(address: str, trail: tuple[str, ...]) -> tuple[str, ...]:
    """The trail with qmail's virtual-domain prefix taken off ("491-" in
    "491-x@example.org": qmail-send(8) turns user@domain of a virtual domain into
    prepend-user@domain, and qmail-local(8) records that in Delivered-To), as the failed
    address's own line shows it; () when the latest line is not the failed address."""
    if not trail:
        return ()
    latest = trail[0]
    if latest == address:
        return trail
    if not latest.endswith("-" + address):
        return ()
    prefix = latest[: -len(address)]
    return tuple(a.removeprefix(prefix) for a in trail)


def _forwarded_path(address: str, original: OriginalMessage) -> tuple[str, ...]:
    """(the failed address, the address sent to) when the destination's own Delivered-To
    lines name one other address, the one the returned message's To or Cc names: the
    destination delivered the mail to that address and its forwarding sent it on to the
    failed one (round 42: qmail-local's "&target" writes its Delivered-To line and
    re-queues the message, and qmail-send's notice for the target names only the target).
    A line with qmail's virtual-domain prefix ("joe-a@x" for a@x) counts by the To or Cc
    address it ends with; () otherwise, or when the failed address is in the trail or the
    headers (the mail was sent to it)."""
    trail = set(original.delivered_to)
    if len(trail) != 1 or address in trail:
        return ()
    named = [a.lower() for a in addresses_in(" ".join(original.get(h) for h in ("to", "cc")))]
    if address in named:
        return ()
    line = trail.pop()
    for sent in named:
        if line == sent or line.endswith("-" + sent):
            return (address, sent)
    return ()


def _envelope_recipient(report: BounceReport) -> None:
    """The address the mail was sent to, by the returned message's envelope, when a hop on
    the way forwarded it to the address that failed.

    The Received headers record each hop's envelope recipient: when the failed recipient is
    one of them and the first hop's is another address, the mail was sent to that one (an
    alias or a forwarding, reported without an Original-Recipient). Only one failed
    recipient is read so: with several, which first-hop address led where is unknown; and
    only a path of those two addresses (a message resent or forwarded by hand carries the
    hops of its earlier life too)."""
    if len(report.recipients) != 1:
        return
    failed = report.recipients[0]
    address = failed.recipient.lower()
    if failed.final_recipient:
        return
    hops = report.original.received_for
    if len(set(hops)) != 2 or hops[0] != address:
        # The destination's Delivered-To lines are the same record of its own steps.
        hops = _trail_path(address, report.original.delivered_to)
    if not hops:
        hops = _forwarded_path(address, report.original)
    if len(set(hops)) != 2 or hops[0] != address:
        return
    first = hops[-1]
    if first != address and address not in hops[hops.index(first) :]:
        failed.final_recipient = failed.recipient
        failed.recipient = first


def _qualified(recipient: FailedRecipient, original: OriginalMessage, by_mta: bool) -> None:
    """The address sent to, when the report names the recipient by a mailbox of its own
    server's with no domain of the internet: a domain without a dot.

    Cyrus IMAP's Sieve rejection notice (its ``Final-Recipient``) names the mailbox's user
    at the mailbox's domain, else at its ``defaultdomain``, ``internal`` unless set
    (``mbname_recipient``; round 50), whatever address the mail was sent to. When exactly
    one address of the returned message's (its To, Cc, X-Original-To, its Received headers'
    "for") has that local part and a domain with a dot, that one is reported, the report's
    kept as the final recipient.

    GNU Mailutils' Sieve rejection notice names the user at its default email domain, the
    host's own name unless set (``mu_set_user_email``, round 62): a dotless ``vm``, or
    ``mx.example.net`` for mail sent to ``example.net``. In a report no MTA made (no
    Reporting-MTA: a Sieve filter's, "Reporting-UA: sieve; GNU Mailutils 3.15"), a domain that
    is a host under the one address's domain is read the same way; an MTA's report naming its
    own host's address (the shared corpus labels ``rfc3464-04``'s so) is left as it says."""
    local, _, domain = recipient.recipient.rpartition("@")
    if not local or recipient.final_recipient or (by_mta and "." in domain):
        return
    named = " ".join(original.get(h) for h in ("to", "cc", "x-original-to"))
    found = {
        a.lower()
        for a in (*addresses_in(named), *original.received_for)
        if _bare(a.rpartition("@")[0]) == _bare(local) and _under(domain, a.rpartition("@")[2])
    }
    if len(found) == 1:
        recipient.final_recipient, recipient.recipient = recipient.recipient, found.pop()


def _under(reported: str, sent_to: str) -> bool:
    """Whether a report's domain names the server of the address sent to rather than a domain
    of the internet: no dot (round 50), or a host under that address's domain (round 62)."""
    reported, sent_to = reported.lower(), sent_to.lower()
    if "." not in sent_to:
        return False
    return "." not in reported or reported.endswith("." + sent_to)


def _mta_name(fields: dict[str, str]) -> str:
    """The Reporting-MTA's name (``dns; mx.example.org`` -> ``mx.example.org``)."""
    kind, sep, name = fields.get("reporting-mta", "").partition(";")
    found = (name if sep else kind).split()
    return found[0].lower().rstrip(".") if found else ""


def _accepted_for(recipient: FailedRecipient, original: OriginalMessage, reporter: str) -> None:
    """The address the reporting MTA accepted the mail for, when its report names one other
    recipient, without an Original-Recipient, that the returned message names nowhere: an
    alias or a forwarding of its own.

    OpenSMTPD's notice for an alias whose target failed names only the target (its text and
    Final-Recipient, no Original-Recipient), while the Received header it wrote on taking
    the mail ("by <its own name> ... for <the alias>") names the address sent to (round 36;
    issue #16's rule: a recipient is always an address Postline sent to). Only the header
    written by the MTA whose report it is (its Reporting-MTA) counts — a Received "for"
    written by another hop, the sender's own server included, says what that hop was given,
    not what the reporter did with it — and only when that header names one address and the
    failed one is in neither the returned message's envelope nor its To, Cc or
    X-Original-To. The address sent to is reported, the failed one kept as the final
    recipient; an Original-Recipient, when the report gives one, says it instead."""
    if recipient.final_recipient or not reporter:
        return
    accepted = {a for host, a in original.received_by if host == reporter}
    if len(accepted) != 1:
        return
    first = accepted.pop()
    address = recipient.recipient.lower()
    named = _bare(" ".join(original.get(h) for h in ("to", "cc", "x-original-to")))
    if first == address or address in original.received_for or address in named:
        return
    recipient.final_recipient, recipient.recipient = recipient.recipient, first


def _not_recipients(headers: dict[str, str]) -> frozenset[str]:
    """Addresses a bounce names that are not failed recipients (its own From and To)."""
    found: set[str] = set()
    for name in ("from", "to"):
        found.update(a.lower() for a in addresses_in(headers.get(name, "")))
    return frozenset(found)


def _senders(original: OriginalMessage) -> frozenset[str]:
    """The returned message's own sender (its Return-Path, From, Sender): a notice that
    names it (a reply refusing the sender quotes the VERP bounce address; Exchange's NDR
    text lists "Sender Address:") names no failed recipient by it — unless the message
    was also sent to that address."""
    found = {
        a.lower()
        for name in ("return-path", "from", "sender")
        for a in addresses_in(original.get(name))
    }
    found -= {a.lower() for name in ("to", "cc") for a in addresses_in(original.get(name))}
    return frozenset(found)


def _from_addresses(headers: dict[str, str]) -> list[str]:
    return addresses_in(headers.get("from", ""))[:1]


def _fallback_recipients(
    headers: dict[str, str], original: OriginalMessage, exclude: frozenset[str], notice: str
) -> list[FailedRecipient]:
    """When the text names nobody: the headers some MTAs add, the recipient a VERP return
    path encodes (a mailing list's), the address the subject names ("Returned mail: x...
    Mailbox full", Domino's "DELIVERY FAILURE: User x (x@y) not listed"), else the
    original's To, or the one of its To and Cc whose local part the notice names."""
    signs = mail_signs()
    for name in signs.recipient_headers:
        if listed := _named_in(headers.get(name, ""), exclude):
            return listed
    verp = signs.verp_recipients(headers)
    if len(verp) == 1:
        return [FailedRecipient(recipient=verp[0])]
    if listed := _named_in(headers.get("subject", ""), exclude):
        return listed
    found = addresses_in(original.get("to"))
    if len(found) == 1:
        return [FailedRecipient(recipient=found[0])]
    named = _named_by_local_part(notice, found + addresses_in(original.get("cc")))
    return [FailedRecipient(recipient=named)] if named else []


def _named_in(text: str, exclude: frozenset[str]) -> list[FailedRecipient]:
    """The addresses a header names, but those excluded (the sender's, the reporter's)."""
    found = [a for a in addresses_in(text) if a.lower() not in exclude]
    return [FailedRecipient(recipient=a) for a in dict.fromkeys(found)]


def _named_by_local_part(notice: str, addresses: list[str]) -> str:
    """The one returned recipient whose local part alone the notice names (older Sendmail
    and local mailers report "joe... User unknown" without the domain)."""
    named = {
        a
        for a in addresses
        if re.search(rf"(?<![\w.+@-]){re.escape(a.partition('@')[0])}(?![\w+@-]|\.\w)", notice)
    }
    return named.pop() if len(named) == 1 else ""


def _feedback(
    parts: Parts, headers: dict[str, str], original: OriginalMessage
) -> BounceReport | None:
    reports = [text for ctype, text in parts.reports if ctype == "message/feedback-report"]
    signs = mail_signs()
    if not reports and not signs.is_complaint(headers):
        return None
    text = "\n".join(reports)
    kind = ""
    rcpts: list[str] = []
    for match in _FEEDBACK_FIELD.finditer(text):
        name, value = match.group(1).lower(), match.group(2).strip()
        if name == "feedback-type":
            kind = kind or value.lower()
        else:
            rcpts.extend(typed_address(a) or a for a in addresses_in(value))
    if not rcpts:
        for name in signs.complaint_recipient_headers:
            rcpts = addresses_in(headers.get(name, "") or original.get(name))
            if rcpts:
                break
    if not rcpts:
        rcpts = addresses_in(original.get("to"))
    return BounceReport(
        Kind.FEEDBACK,
        original=original,
        feedback_type=kind or "abuse",
        feedback_recipients=list(dict.fromkeys(rcpts)),
    )
