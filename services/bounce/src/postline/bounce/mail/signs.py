"""Signs that tell a bounce from other automatic mail, from ``rules/mail_signs.yaml``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import yaml

from postline.bounce.classify import lower_pattern


def _re(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE | re.MULTILINE)


def _lowered_re(pattern: str) -> re.Pattern[str]:
    """A pattern searched in lowercased text: a notice's phrases are looked for in the whole
    notice, and matching lowercased text without re.IGNORECASE is several times faster."""
    return re.compile(lower_pattern(pattern), re.MULTILINE)


def _phrases_re(pattern: str) -> re.Pattern[str]:
    """A notice's phrases, a space in them matching any run of white space: notices wrap
    their sentences ("your message could not\nbe delivered", Postfix's at 70 columns)."""
    return _lowered_re(pattern.replace(" ", r"\s+"))


@dataclass(frozen=True)
class MailSigns:
    bounce_senders: re.Pattern[str]
    bounce_subjects: re.Pattern[str]
    bounce_phrases: re.Pattern[str]
    autoreply_headers: tuple[tuple[str, re.Pattern[str]], ...]
    autoreply_subjects: re.Pattern[str]
    complaint_subjects: re.Pattern[str]
    complaint_recipient_headers: tuple[str, ...]
    recipient_headers: tuple[str, ...]
    delay_subjects: re.Pattern[str]
    delay_phrases: re.Pattern[str]
    dsn_fields: re.Pattern[str]
    challenge_phrases: re.Pattern[str] | None = None
    autoreply_phrases: re.Pattern[str] | None = None
    list_subjects: re.Pattern[str] | None = None
    verp_headers: tuple[str, ...] = ()
    verp_recipient: re.Pattern[str] | None = None

    def is_autoreply(self, headers: dict[str, str], notice: str = "") -> bool:
        if self.looks_like_bounce(headers, ""):
            return self._relayed_autoreply(headers, notice)
        if self.autoreply_subjects.search(headers.get("subject", "")):
            return True
        # RFC 3834's Auto-Submitted: auto-replied is set by bounce generators too (Exim,
        # Mail.ru): with a notice in a bounce's words and no auto-reply subject, the header
        # says only that the mail was automatic, not which kind.
        if notice and self.bounce_phrases.search(notice.lower()):
            return False
        if any(pattern.search(headers.get(name, "")) for name, pattern in self.autoreply_headers):
            return True
        # A reply with no RFC 3834 header and a subject that says nothing, in a person's words
        # of absence (Debian's vacation(1) sends its user's text as it is; round 37).
        phrases = self.autoreply_phrases
        return bool(notice and phrases is not None and phrases.search(notice.lower()))

    def _relayed_autoreply(self, headers: dict[str, str], notice: str) -> bool:
        """An auto-reply under a bounce's sender: RFC 3834 (section 4) has responders reply
        to the Return-Path, which for bulk mail is the bounce address, and a relay or
        sending service may send the reply on as MAILER-DAEMON (Amazon SES). The sender
        alone then says bounce; an auto-reply's subject *and* an RFC 3834 header (section
        5; Exim and Gmail mark their bounces with Auto-Submitted too, so it cannot decide
        alone), with no bounce subject and no bounce's words, say auto-reply. A notice with
        report fields never gets here (parse.py reads them first)."""
        if self.bounce_subjects.search(headers.get("subject", "")):
            return False
        if not self.autoreply_subjects.search(headers.get("subject", "")):
            return False
        if notice and self.bounce_phrases.search(notice.lower()):
            return False
        return any(
            pattern.search(headers.get(name, "")) for name, pattern in self.autoreply_headers
        )

    def looks_like_bounce(self, headers: dict[str, str], notice: str) -> bool:
        return bool(
            self.bounce_senders.search(headers.get("from", ""))
            or self.bounce_subjects.search(headers.get("subject", ""))
            or (notice and self.bounce_phrases.search(notice.lower()))
        )

    def is_challenge(self, notice: str) -> bool:
        """A challenge-response system's request to confirm the sender (no failure)."""
        phrases = self.challenge_phrases
        return phrases is not None and bool(phrases.search(notice.lower()))

    def is_list_mail(self, headers: dict[str, str]) -> bool:
        """A mailing list's digest or moderation notice (no failure, whatever it quotes)."""
        subject = headers.get("subject", "")
        return self.list_subjects is not None and bool(self.list_subjects.search(subject))

    def verp_recipients(self, headers: dict[str, str]) -> list[str]:
        """The recipients a VERP return path the bounce came to encodes (local=domain)."""
        if self.verp_recipient is None:
            return []
        found: list[str] = []
        for name in self.verp_headers:
            for match in self.verp_recipient.finditer(headers.get(name, "")):
                found.append(f"{match.group('local')}@{match.group('domain')}")
        return list(dict.fromkeys(found))

    def is_complaint(self, headers: dict[str, str]) -> bool:
        return bool(self.complaint_subjects.search(headers.get("subject", "")))

    def is_delay(self, headers: dict[str, str], notice: str) -> bool:
        return bool(
            self.delay_subjects.search(headers.get("subject", ""))
            or self.delay_phrases.search(notice.lower())
        )

    def has_dsn_fields(self, text: str) -> bool:
        return bool(self.dsn_fields.search(text))


@cache
def mail_signs() -> MailSigns:
    raw = yaml.safe_load(
        resources.files("postline.bounce.rules").joinpath("mail_signs.yaml").read_text("utf-8")
    )
    return MailSigns(
        bounce_senders=_re(raw["bounce_senders"]),
        bounce_subjects=_re(raw["bounce_subjects"]),
        bounce_phrases=_phrases_re(raw["bounce_phrases"]),
        autoreply_headers=tuple((k.lower(), _re(v)) for k, v in raw["autoreply_headers"].items()),
        autoreply_subjects=_re(raw["autoreply_subjects"]),
        complaint_subjects=_re(raw["complaint_subjects"]),
        complaint_recipient_headers=tuple(raw["complaint_recipient_headers"]),
        recipient_headers=tuple(raw["recipient_headers"]),
        delay_subjects=_re(raw["delay_subjects"]),
        delay_phrases=_phrases_re(raw["delay_phrases"]),
        dsn_fields=_re(raw["dsn_fields"]),
        challenge_phrases=(
            _lowered_re(raw["challenge_phrases"]) if raw.get("challenge_phrases") else None
        ),
        list_subjects=_re(raw["list_subjects"]) if raw.get("list_subjects") else None,
        autoreply_phrases=(
            _phrases_re(raw["autoreply_phrases"]) if raw.get("autoreply_phrases") else None
        ),
        verp_headers=tuple(str(h).lower() for h in raw.get("verp_headers") or ()),
        verp_recipient=_re(raw["verp_recipient"]) if raw.get("verp_recipient") else None,
    )
