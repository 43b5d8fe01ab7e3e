"""Failed recipients stated in a bounce's text, by the patterns in ``rules/mail_formats.yaml``."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources

import yaml

from postline.bounce.classify import lower_pattern
from postline.bounce.mail.model import FailedRecipient
from postline.bounce.mail.replies import reply_of
from postline.bounce.prefilter import gate, ruled_out

# An address as bounces print it: a local part without spaces or brackets (or quoted), a
# domain name or a bracketed address literal. The local part is bounded (RFC 5321 allows 64
# octets; 256 is generous) so that a long run of text without an "@" costs linear time.
_LOCAL = r"(?:\"[^\"\s]{1,256}\"|[^\s<>()\[\]\"',;:@]{1,256})"
_DOMAIN = r"(?:[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?|\[[0-9.:a-fA-F]+\])"
ADDR = rf"(?P<addr>{_LOCAL}@{_DOMAIN})"
_ANY_ADDR = re.compile(ADDR)
_MAX_BLOCK_LINES = 40
# A recipient's own line may state its action as report fields do ("x@y; Action: Delivered;
# Status: 2.0.0"): the first one in its block counts where no section heading lists it.
_STATED_ACTION = re.compile(r"\baction:\s*(failed|delayed|delivered|relayed|expanded)\b", re.I)
# A line that ends with a reply's code (Postfix wraps "said: 550 5.1.1" and goes on with the
# reply's words on an indented line): the next indented line is that reply, even when it
# starts with an address ("<bounce@sender>: unauthorized sender", Apple's private relay
# naming the sender; "<x@y>: Recipient address rejected"), never a recipient of its own.
_REPLY_GOES_ON = re.compile(
    r"(?:^|\s)(?:[245]\d\d(?:[ -][245]\.\d{1,3}\.\d{1,3})?|[245]\.\d{1,3}\.\d{1,3})\s*$"
)


@dataclass(frozen=True)
class Hint:
    # (header name | body, pattern, its gate), the body last: a header is short to search.
    conditions: tuple[tuple[str, re.Pattern[str], re.Pattern[str] | None], ...]
    reason: str
    command: str
    recipient: re.Pattern[str] | None = None  # the failed recipients it is about
    diagnostic: re.Pattern[str] | None = None  # what their own diagnostic must say
    # Only recipients of a domain the notice's own host belongs to (From: the host's
    # mailer-daemon): the reporting MTA is the final destination of their domain.
    own_domain: bool = False

    def applies(self, headers: dict[str, str], notice: str) -> bool:
        for where, pattern, needs in self.conditions:
            value = notice if where == "body" else headers.get(where, "")
            if ruled_out(needs, value) or not pattern.search(value):
                return False
        return True

    @cached_property
    def reads_notice_only(self) -> bool:
        """Whether its conditions are on the notice alone and ``about`` needs no reporter:
        then ``applies`` reads no header (a header's decoding is kept on first read) and
        may be asked after ``about``, both being searches and nothing else."""
        return not self.own_domain and all(where == "body" for where, _, _ in self.conditions)

    def about(self, failed: FailedRecipient, reporter: str = "") -> bool:
        """Whether the hint is about this failed recipient; ``reporter`` is the host the
        notice came from (the domain of its From address)."""
        if self.recipient is not None and self.recipient.search(failed.recipient) is None:
            return False
        if self.diagnostic is not None and self.diagnostic.search(failed.diagnostic) is None:
            return False
        return not self.own_domain or in_domain(reporter, failed.recipient)


def in_domain(host: str, address: str) -> bool:
    """Whether ``host`` is the domain of ``address`` or a name within it
    (``mx.example.org`` and ``u@example.org``)."""
    domain = address.rpartition("@")[2].strip("<> ").lower()
    host = host.lower()
    return bool(domain) and (host == domain or host.endswith("." + domain))


@dataclass(frozen=True)
class MailFormats:
    original_starts: tuple[re.Pattern[str], ...]
    recipient_lines: tuple[re.Pattern[str], ...]
    mentions: tuple[re.Pattern[str], ...]
    ends: tuple[re.Pattern[str], ...]
    ignore: tuple[re.Pattern[str], ...]
    commands: tuple[tuple[str, re.Pattern[str]], ...]
    hints: tuple[Hint, ...]
    sent_to: tuple[re.Pattern[str], ...] = ()
    sender_intros: tuple[re.Pattern[str], ...] = ()
    sections: tuple[tuple[str, re.Pattern[str]], ...] = ()  # (action, heading), in order
    section_words: tuple[str, ...] = ()
    ends_after_reply: tuple[re.Pattern[str], ...] = ()
    final_intros: tuple[re.Pattern[str], ...] = ()
    transcript_sent: re.Pattern[str] | None = None  # ">>> DATA": a command sent
    transcript_reply: re.Pattern[str] | None = None  # "<<< 550 ...": its reply
    # where a transcript starts whose lines before the MTA's line naming a local program
    # are that program's output (Sendmail: "----- Transcript of session follows -----")
    program_transcript: re.Pattern[str] | None = None
    # report field -> its value -> the reason it names (an MTA's own verdict)
    verdict_fields: dict[str, dict[str, str]] = field(default_factory=dict)
    # the reporting MTA's own failure in a reply's form: its code is no server's
    own_failures: tuple[re.Pattern[str], ...] = ()
    # a returned message's fields naming the address its destination delivered it to
    local_trail_fields: frozenset[str] = frozenset({"delivered-to"})

    def verdict(self, fields: dict[str, str]) -> str:
        """The reason a recipient's report fields state outright, if any."""
        for name, values in self.verdict_fields.items():
            # one space after a ';' ("automatic-action/MDN-sent-automatically;deleted")
            value = " ".join(fields.get(name, "").replace(";", "; ").split()).lower()
            if value in values:
                return values[value]
        return ""

    def section(self, line: str) -> str:
        """The action a heading line starts a section of ('' when it is no heading)."""
        lowered = line.lower()
        if self._section_word.search(lowered) is None:
            return ""
        ascii_line = line.isascii()
        for action, pattern in self.sections:
            needs = self._section_gates[action]
            if needs is not None and ascii_line and needs.search(lowered) is None:
                continue  # the gate (see ruled_out), on the line lowered once
            twin = self._section_twins[action]
            if twin is not None and ascii_line:
                if twin.search(lowered):
                    return action
            elif pattern.search(line):
                return action
        return ""

    def ends_block(self, line: str) -> bool:
        return self._ends.search(line) is not None

    def ends_answered_block(self, line: str, block: list[str]) -> bool:
        """Whether the line closes a block that holds an SMTP reply."""
        if not self.ends_after_reply or self._ends_after_reply.search(line) is None:
            return False
        text = "\n".join(block)
        return any(reply_of(text))

    def own_failure(self, text: str) -> bool:
        """Whether the text is the reporting MTA's own failure written as a reply
        (``own_failures``), so that the code in it is no server's."""
        if not self.own_failures or ruled_out(self._own_failure_gate, text):
            return False
        return self._own_failure.search(text) is not None

    def ignored(self, line: str) -> bool:
        # Most lines have none of the words every ignored line has (its gate).
        return not ruled_out(self._ignore_gate, line) and self._ignore.search(line) is not None

    def sent_address(self, text: str) -> str:
        for pattern in self.sent_to:
            match = pattern.search(text)
            if match:
                return match.group("addr")
        return ""

    def split_original(self, text: str) -> tuple[str, str]:
        """(notice, returned original) of a one-part bounce."""
        best = self.original_start.search(text)
        if best is None:
            return text, ""
        end = text.find("\n", best.end())
        return text[: best.start()], text[end + 1 :] if end >= 0 else ""

    # The patterns of a kind as one, made once: these are read line by line.
    @cached_property
    def original_start(self) -> re.Pattern[str]:
        return _combined(self.original_starts)

    @cached_property
    def _ends(self) -> re.Pattern[str]:
        return _combined(self.ends)

    @cached_property
    def _ends_after_reply(self) -> re.Pattern[str]:
        return _combined(self.ends_after_reply)

    @cached_property
    def _ignore(self) -> re.Pattern[str]:
        return _combined(self.ignore)

    @cached_property
    def _own_failure(self) -> re.Pattern[str]:
        return _combined(self.own_failures)

    @cached_property
    def _own_failure_gate(self) -> re.Pattern[str] | None:
        return gate(self._own_failure)

    @cached_property
    def _ignore_gate(self) -> re.Pattern[str] | None:
        return gate(self._ignore)

    @cached_property
    def _command_gates(self) -> dict[str, re.Pattern[str] | None]:
        return {name: gate(pattern) for name, pattern in self.commands}

    @cached_property
    def _section_twins(self) -> dict[str, re.Pattern[str] | None]:
        return {action: lowered_twin(pattern) for action, pattern in self.sections}

    @cached_property
    def _section_gates(self) -> dict[str, re.Pattern[str] | None]:
        return {action: gate(pattern) for action, pattern in self.sections}

    @cached_property
    def _section_word(self) -> re.Pattern[str]:
        """Any of ``section_words`` (each as it is, in a lowercased line)."""
        return re.compile("|".join(map(re.escape, self.section_words)) or "(?!)")

    def command(self, text: str) -> str:
        lowered = text.lower()
        for name, pattern in self.commands:
            needs = self._command_gates[name]
            if (needs is None or needs.search(lowered)) and pattern.search(lowered):
                return name
        return ""


def _combined(patterns: tuple[re.Pattern[str], ...]) -> re.Pattern[str]:
    # One pass over the text instead of one per pattern: the first start wins either way.
    return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.I | re.M)


def lowered_twin(pattern: re.Pattern[str]) -> re.Pattern[str] | None:
    """A pattern compiled with re.IGNORECASE as one for lowercased ASCII text, without the
    flag (several times faster), when it is the same search there: an ASCII pattern with no
    character class (lowered, a class's range such as ``[A-z]`` would mean another set);
    None otherwise. In text that is not ASCII only the pattern itself says (Unicode's case
    rules match the Kelvin sign to "k", which lowercasing does not)."""
    if not pattern.pattern.isascii() or "[" in pattern.pattern:
        return None
    return re.compile(lower_pattern(pattern.pattern), pattern.flags & ~re.IGNORECASE)


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern.replace("{addr}", ADDR), re.IGNORECASE | re.MULTILINE)


def _condition(where: str, value: str) -> tuple[str, re.Pattern[str], re.Pattern[str] | None]:
    pattern = _compile(value)
    return where.lower(), pattern, gate(pattern)


@cache
def mail_formats() -> MailFormats:
    raw = yaml.safe_load(
        resources.files("postline.bounce.rules").joinpath("mail_formats.yaml").read_text("utf-8")
    )
    return MailFormats(
        original_starts=tuple(_compile(p) for p in raw["original_starts"]),
        recipient_lines=tuple(_compile(p) for p in raw["recipient_lines"]),
        mentions=tuple(_compile(p) for p in raw["mentions"]),
        ends=tuple(_compile(p) for p in raw["ends"]),
        ignore=tuple(_compile(p) for p in raw["ignore"]),
        commands=tuple(
            (name, re.compile(lower_pattern("|".join(f"(?:{p})" for p in patterns)), re.M))
            for name, patterns in raw["commands"].items()
        ),
        hints=tuple(
            Hint(
                conditions=tuple(
                    sorted(
                        (
                            _condition(key, value)
                            for key, value in hint.items()
                            if key
                            not in ("reason", "command", "recipient", "diagnostic", "own_domain")
                        ),
                        key=lambda condition: condition[0] == "body",
                    )
                ),
                reason=str(hint.get("reason", "")),
                command=str(hint.get("command", "")).upper(),
                recipient=_compile(hint["recipient"]) if hint.get("recipient") else None,
                diagnostic=_compile(hint["diagnostic"]) if hint.get("diagnostic") else None,
                own_domain=bool(hint.get("own_domain")),
            )
            for hint in raw.get("hints") or []
        ),
        sent_to=tuple(_compile(p) for p in raw.get("sent_to") or []),
        sender_intros=tuple(_compile(p) for p in raw.get("sender_intros") or []),
        section_words=tuple(str(w) for w in raw.get("section_words") or ()),
        ends_after_reply=tuple(_compile(p) for p in raw.get("ends_after_reply") or []),
        final_intros=tuple(_compile(p) for p in raw.get("final_intros") or []),
        transcript_sent=_compile(raw["transcript_sent"]) if raw.get("transcript_sent") else None,
        program_transcript=(
            _compile(raw["program_transcript"]) if raw.get("program_transcript") else None
        ),
        transcript_reply=(
            _compile(raw["transcript_reply"]) if raw.get("transcript_reply") else None
        ),
        own_failures=tuple(_compile(p) for p in raw.get("own_failures") or []),
        local_trail_fields=frozenset(
            str(f).lower() for f in raw.get("local_trail_fields") or ["delivered-to"]
        ),
        verdict_fields={
            str(name).lower(): {str(v).lower(): str(r) for v, r in values.items()}
            for name, values in (raw.get("verdict_fields") or {}).items()
        },
        sections=tuple(
            (action, _compile("|".join(f"(?:{p})" for p in raw["sections"][action])))
            for action in ("failed", "delayed", "delivered")
            if raw.get("sections", {}).get(action)
        ),
    )


def _recipient_line(formats: MailFormats, line: str) -> tuple[str, str] | None:
    if "@" not in line:
        return None
    for pattern in formats.recipient_lines:
        match = pattern.match(line)
        if match:
            groups = match.groupdict()
            rest = " ".join(filter(None, (groups.get("pre"), groups.get("rest"))))
            return match.group("addr"), rest.strip()
    return None


def text_recipients(notice: str, exclude: frozenset[str] = frozenset()) -> list[FailedRecipient]:
    """Recipients and their diagnostics as the notice's lines state them.

    Each recipient is the address the mail was sent to (the one a forwarding or an alias
    expanded from, when the notice names it), with the action of the notice's section that
    lists it (failed, delayed, or delivered for the successful part of a mixed notice)."""
    formats = mail_formats()
    lines = notice.splitlines()
    blocks: dict[str, list[str]] = {}
    actions: dict[str, str] = {}
    finals: dict[str, str] = {}  # sent-to address -> the address it was expanded to
    current: list[str] | None = None
    # Which block each of the notice's lines went to (by index), and the recipients listed
    # together before one reason (a block left empty when the next address came): a reason
    # is shared only by a group so listed, never taken from another recipient's own lines.
    owners: dict[int, list[str]] = {}
    listed_with: dict[int, int] = {}  # id(block) -> id(the first block of its group)
    key = ""
    since_address = 0
    section = ""
    previous = ""
    sent = ""  # a transcript's command line whose reply has not yet named its recipient
    for index, line in enumerate(lines):
        hit = _recipient_line(formats, line)
        if (
            hit is not None
            and current is not None
            and line[:1] in (" ", "\t")
            and _REPLY_GOES_ON.search(previous)
        ):
            hit = None  # the reply begun on the line before goes on, naming an address
        if hit is None:
            sent = _transcript_command(formats, line, sent)
        after_intro = hit is not None and any(p.search(previous) for p in formats.sender_intros)
        after_final = (
            hit is not None
            and current is not None
            and any(p.search(previous) for p in formats.final_intros)
        )
        if line.strip():
            previous = line
        if after_intro:
            current = None
            continue
        if after_final and hit is not None:
            # The address the current recipient was finally delivered to (ZMailer's
            # "Final Recipient:" after its "Original Recipient:"): no recipient of its own.
            if hit[0].strip(".").lower() != key:
                finals[key] = hit[0].strip(".")
            continue
        if hit is not None and current is not None and since_address == 0:
            forwarded = _forwarded_from(formats, line, hit[0])
            if forwarded and forwarded != key:
                # The line after a recipient's names the address it was sent to, alone
                # (Messaging Server's "Original address: sent@y" after "Recipient address:").
                blocks[forwarded] = blocks.pop(key)
                if key in actions:
                    actions[forwarded] = actions.pop(key)
                finals[forwarded] = finals.pop(key, key)
                key = forwarded
                current = blocks[key]
                continue
        if hit is not None and (not hit[1] or hit[0].lower() not in exclude):
            address, rest = hit
            before = current
            key = (formats.sent_address(line) or address).strip(".").lower()
            if key != address.strip(".").lower():
                finals[key] = address.strip(".")
            elif key not in blocks:
                # An address the notice named as where another was forwarded or expanded
                # to (a transcript after "(expanded from: x)" naming it again) is that
                # recipient's, not one of its own.
                key = next((k for k, f in finals.items() if f.lower() == key), key)
            current = blocks.setdefault(key, [])
            if before is not None and before is not current and not any(x.strip() for x in before):
                listed_with[id(current)] = listed_with.get(id(before), id(before))
            if section:
                actions.setdefault(key, section)
            since_address = 0
            if rest:
                owners[index] = current
                current.append(rest)
            if sent and sent not in current:
                current.append(sent)
            sent = ""
            continue
        heading = formats.section(line)
        if heading:
            section = heading
        if current is None:
            continue
        since_address += 1
        if since_address <= 2 and not blocks[key]:
            sent = formats.sent_address(line)
            if sent and sent.lower() != key:
                # Exim names the address it was sent to on the line after the final one.
                del blocks[key]
                actions.pop(key, None)
                finals[sent.strip(".").lower()] = key
                key = sent.strip(".").lower()
                current = blocks.setdefault(key, [])
                if section:
                    actions.setdefault(key, section)
                continue
        if formats.ends_block(line):
            # A rule closes a block that has its diagnostic; before that it only separates
            # the address from it (m-FILTER, BIGLOBE: "----- server message").
            if any(x.strip() for x in current):
                current = None
            continue
        if formats.ends_answered_block(line, current):
            current = None
            continue
        if formats.ignored(line):
            continue
        if len(current) < _MAX_BLOCK_LINES:
            owners[index] = current
            current.append(line)
    if not blocks:
        # A sentence names the recipient; what follows it is the diagnostic.
        for pattern in formats.mentions:
            for match in pattern.finditer(notice):
                address = match.group("addr").strip(".").lower()
                if address not in exclude and address not in blocks:
                    # The sentence that names the address may hold the reason ("...
                    # because the address x does not exist"): read from its line's start.
                    start = notice.rfind("\n", 0, match.start()) + 1
                    after = notice[start:].splitlines()[:_MAX_BLOCK_LINES]
                    blocks[address] = after
            if blocks:
                break
    recipients = [recipient_from_block(address, block) for address, block in blocks.items()]
    for r in recipients:
        stated = _STATED_ACTION.search(r.diagnostic)
        r.listed_as = actions.get(r.recipient, "") or (stated.group(1).lower() if stated else "")
        r.final_recipient = finals.get(r.recipient, "")
        r.action = r.listed_as or r.action
    if recipients and not all(r.reply_code or r.status for r in recipients):
        # The notice may state the reason apart from the addresses (before them, or once
        # for all): then it is the diagnostic of every recipient whose block has no reply.
        # Another recipient's own lines are not such a statement (Exim's delay warning
        # lists an address with no reason after one with its 452), unless the two were
        # listed together before it (a block left empty when the next address came).
        # Boilerplate (a virus scanner's footer: "analizado con NOD32 antivirus") is no
        # reason here either.
        groups = {id(block): listed_with.get(id(block), id(block)) for block in blocks.values()}
        shared_by: dict[int, FailedRecipient] = {}
        single = len(recipients) == 1  # then the whole notice is about that recipient
        for r, block in zip(recipients, blocks.values(), strict=True):
            if r.reply_code or r.status:
                continue
            group = groups[id(block)]
            if group not in shared_by:
                about_all = [
                    ln
                    for i, ln in enumerate(lines)
                    if (i not in owners or groups.get(id(owners[i])) == group)
                    and _about_all(formats, ln, blocks)
                    and not formats.ignored(ln)
                ]
                shared_by[group] = recipient_from_block("", about_all)
            shared = shared_by[group]
            if not shared.diagnostic:
                continue
            if shared.reply_code or shared.status or not r.diagnostic:
                r.diagnostic = f"{r.diagnostic} {shared.diagnostic}".strip()
                r.status, r.reply_code = shared.status, shared.reply_code
                r.command = r.command or shared.command
            elif single:
                # Words about the failure that the recipient's own lines may lack (how long
                # it was tried...): read only when those lines name no reason.
                r.context = shared.diagnostic
    return recipients


def _about_all(formats: MailFormats, line: str, recipients: Iterable[str] = ()) -> bool:
    """Whether a line may state the reason once for all recipients: no address, or only
    the sender's in a heading ("...not accepting mail from sender@x:") or in a transcript's
    reply that names no recipient (Sendmail's "<<< 554 5.7.1 <DATA>: ... limit of 2
    recipients per hour for sender sender@x exceeded", given once after the last of the
    addresses it refused: round 61)."""
    if "@" not in line:
        return True
    if _recipient_line(formats, line) is not None:
        return False
    if formats.section(line) != "":
        return True
    if formats.transcript_reply is None or not formats.transcript_reply.match(line):
        return False
    lowered = line.lower()
    return not any(recipient in lowered for recipient in recipients)


def _forwarded_from(formats: MailFormats, line: str, address: str) -> str:
    """The sent-to address a line names by itself (its only address is that one), if any."""
    sent = formats.sent_address(line)
    if not sent or sent.strip(".").lower() != address.strip(".").lower():
        return ""
    return sent.strip(".").lower()


def _transcript_command(formats: MailFormats, line: str, sent: str) -> str:
    """The transcript's command still waiting for its recipient, after this line."""
    if formats.transcript_sent is None or formats.transcript_reply is None:
        return ""
    if formats.transcript_sent.match(line):
        return line.strip()
    if not line.strip() or formats.transcript_reply.match(line):
        return sent
    return ""


def transcript_stages(notice: str) -> dict[str, str]:
    """The replies of a session transcript (``transcript_reply``), each flattened and
    lowered, with the SMTP command it answered (the ``commands`` phrase of the command line
    before it: Sendmail's ">>> MAIL From:<s@x> SIZE=360" / "<<< 553 5.1.8 <s@x>... Domain of
    sender address s@x does not exist"). A refusal of MAIL FROM is followed by no recipient's
    line, only by Sendmail's own ("501 5.6.0 Data format error"): the report's
    Diagnostic-Code repeats the reply, and this says which stage it answered."""
    formats = mail_formats()
    if formats.transcript_sent is None or formats.transcript_reply is None:
        return {}
    stages: dict[str, str] = {}
    sent = ""
    reply: list[str] = []
    for line in [*notice.splitlines(), ""]:
        if formats.transcript_reply.match(line):
            reply.append(line.strip()[3:])
        else:
            command = formats.command(sent) if reply and sent else ""
            if command:
                # Sendmail's Diagnostic-Code keeps only the first line of a multi-line reply
                # ("517-Domain does not exist: x." before "517 Invalid domain, see <URL:...>").
                for said in (" ".join(reply), reply[0]):
                    stages.setdefault(flatten_reply(said).lower(), command)
            reply = []
        sent = _transcript_command(formats, line, sent)
    return stages


# "550-5.7.1 " (and "550 5.7.1 ") starting the continuation lines of a multi-line reply.
_CONTINUATION = re.compile(r"(?<=\S)\s+[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?(?=\S)")


def flatten_reply(text: str) -> str:
    """A multi-line SMTP reply as one line: the code and status once, then the words."""
    flat = " ".join(text.split())
    head = re.match(r"^[245]\d\d[ -](?:[245]\.\d{1,3}\.\d{1,3}\s+)?", flat)
    if not head:
        return flat
    rest = _CONTINUATION.sub(" ", flat[head.end() :])
    return head.group(0).replace("-", " ", 1) + rest


def recipient_from_block(address: str, block: list[str]) -> FailedRecipient:
    text = "\n".join(block).strip()
    formats = mail_formats()
    code, status = reply_of(text)
    if code and formats.own_failure(text):
        code = 0  # the reporting MTA's own words in a reply's form: no server answered
    return FailedRecipient(
        recipient=address,
        diagnostic=" ".join(text.split()),
        status=status,
        reply_code=code,
        command=formats.command(text),
    )


def addresses_in(text: str) -> list[str]:
    return [m.group("addr") for m in _ANY_ADDR.finditer(text)]
