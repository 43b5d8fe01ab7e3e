"""SMTP reply (or a bounce's diagnostic) -> error status, by ``rules/smtp_replies.yaml``.

The rules file names *reasons* (user-unknown, mailbox-full, spam...), each with the error
status it means, the RFC 3463 codes that name it and the provider texts that say it. A
failure is judged in two passes, as the reference library in this field does, so that the
evidence Postline acts on (suppressing an address) is the unambiguous kind:

1. ``first_pass``, in order: a reason wins when the enhanced code names it or its text says
   it. Some reasons narrow this: ``veto`` (texts of other reasons that overrule the code:
   a 5.1.1 that says "relay access denied" is no unknown user — unless the reason's own
   words are there too), ``text_commands`` (the text
   counts only after those SMTP commands: "user unknown" is a missing mailbox when answered
   to RCPT, a content filter's verdict after DATA or in a filter's own notice: the
   pseudo-command FILTER), ``not_with_classes`` (code classes with which the text does not
   count at an unnamed stage: "550 5.7.1 User unknown" is a policy's answer),
   ``code_needs_text`` (the code counts only with one of those reasons' texts).
2. When the code names no reason, or an uncertain one (``uncertain``: "network error" can be
   a timeout that expired the message): ``second_pass`` texts in order, then the code's
   reason, syntax errors, then the code's class (x.5 protocol, x.6 content, x.7 security),
   the diagnostic type (``x-unix``: a local mailer failed, unless its words are one of
   ``local_agent_reasons``: "mail.local: unknown user", or its status one of
   ``local_agent_codes``: 5.2.2 mailbox full, or its exit status one of
   ``local_exit_statuses``: Sendmail's "X-Unix; 77"), a delay notice (expired), a
   failed greeting (blocked); else "on hold" when there is a diagnostic to go on.

A reason's words are its ``pattern`` and its ``texts`` (each with a sample); ``unless``
words cancel them, and ``permanent_text`` makes them count only in a permanent failure (a
DNS answer retried until the MTA gave up says nothing final about the domain),
``delay_text`` only in a delay notice (a connection that timed out is the destination out
of reach while the MTA still tries, and the resend timeout once it gave up).

A missing mailbox's words said of the sender (``sender_subject``: the last subject named
before them is the sender, not a recipient) are no reason of the recipient's: they say the
sender was refused ("553 sender account does not exist"), whichever reason's words they are.

Every text is read lowercased with its names masked first (``names``: an address, a host's
name; names.py): a recipient called quota@ or a host called nosuchuser.mx.example.org says
nothing of why a delivery failed (round 74).

Temporary or permanent: the class of the reply (4xx / 4.x.x), or for a bounce mail its
RFC 3464 Action (``delayed`` is a deferral, ``failed`` is final).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib import resources

import yaml

from postline.bounce.names import NameMask, name_mask
from postline.bounce.prefilter import Index, alternatives, grams_of, required

# FILTER is no SMTP command: the notice is a filter's (a content-filtering gateway's, or a
# domain's whose receive filters answer in a missing mailbox's words), so a failure it does
# not place at a stage was that filter's verdict (rules/mail_formats.yaml, hints).
_COMMANDS = frozenset({"CONN", "HELO", "MAIL", "RCPT", "DATA", "NONE", "FILTER"})
_NO_REASON = frozenset({"on-hold", "undefined"})
MAX_TEXT = 8 * 1024
_WORD = 24  # room after a place for a subject word that begins there ("recipient", "rcpt")


@dataclass(frozen=True)
class Classification:
    status: int  # 1..10, 99 (see the design's table)
    permanent: bool
    reason: str = ""  # the rules' reason name (user-unknown, spam...)


@dataclass(frozen=True)
class Wording:
    """One wording of a reason, with a reply that says it and where it is from."""

    text: str
    sample: str
    source: str


@dataclass(frozen=True)
class TextRule:
    """One reason of the rules file: its status, codes and texts."""

    name: str
    status: int
    words: tuple[re.Pattern[str], ...]  # the words in ASCII (see _by_first_letter)
    sample: str
    other_script: tuple[re.Pattern[str], ...] = ()  # words with accents or in other scripts
    wordings: tuple[Wording, ...] = ()  # the rules file's `texts`, each with its sample
    unless: re.Pattern[str] | None = None  # words that cancel this reason's text
    permanent_text: bool = False  # the text counts only in a permanent failure
    delay_text: bool = False  # the text counts only in a delay (RFC 3464 Action: delayed)
    codes: frozenset[str] = frozenset()
    text_commands: frozenset[str] = frozenset()  # empty: any; NONE: the command is unknown
    veto: tuple[str, ...] = ()
    code_needs_text: tuple[str, ...] = ()
    also_texts: tuple[str, ...] = ()  # other reasons' texts that also say this one
    commands: frozenset[str] = frozenset()  # a failure answered to these is this reason
    not_commands: frozenset[str] = frozenset()  # never this reason after these commands
    # Code classes ("x.7") with which the text does not count at a stage the failure does
    # not name: a security or policy code says a filter answered, whatever its words.
    not_with_classes: frozenset[str] = frozenset()
    # Reasons whose code (the notice's status or the reply's own) outranks ``commands``: the
    # stage does not make the failure this reason then (round 70: X.3.2 at MAIL).
    yield_to_codes: frozenset[str] = frozenset()

    def says(self, text: str, worth: Iterable[int] | None = None) -> bool:
        """Whether the (lowercased) text says this reason (and nothing that cancels it);
        ``worth`` are the places of the words that may match it (None: all of them)."""
        if worth is not None and not worth and text.isascii():
            return False  # none of its words can match (see prefilter), nor other scripts'
        # A loop, not any() over a generator: this runs some twenty times a failure.
        for place in range(len(self.words)) if worth is None else worth:
            if self.words[place].search(text) is not None:
                break
        else:
            # Words with accents or in other scripts are looked for only in text that has
            # such characters: most replies are ASCII.
            if text.isascii() or not any(p.search(text) for p in self.other_script):
                return False
        return self.unless is None or self.unless.search(text) is None

    def starts(self, text: str, worth: Iterable[int] | None = None) -> list[int]:
        """Where the first match of each of this reason's patterns begins in the text."""
        words = self.words if worth is None else [self.words[i] for i in worth]
        if not text.isascii():
            words = [*words, *self.other_script]
        return [m.start() for p in words if (m := p.search(text))]


@dataclass(frozen=True)
class SenderSubject:
    """Reasons whose words, said of the sender, refuse the sender instead (the rules
    file's ``sender_subject``): "553 sender account does not exist" is no unknown
    recipient."""

    reasons: frozenset[str]
    reason: str  # what the words mean when the sender is their subject
    reach: int  # how far back, in characters, a subject is looked for
    subjects: re.Pattern[str]  # the sender words (group "sender") or the recipient's
    # Words that say an address is missing, after the sender's words ("sender <s@x> does
    # not exist") or right before them ("no such sender"): the rules file's
    # ``missing_after`` and ``missing_before`` (None: not looked for).
    missing_after: re.Pattern[str] | None = None
    missing_before: re.Pattern[str] | None = None
    # Strings one of which a text must hold for either of those to match in it (see
    # prefilter.required; empty: none to tell, always looked for).
    missing_needs: frozenset[str] = frozenset()

    def names_sender(self, text: str, start: int) -> bool:
        """Whether the subject that comes last at or before ``start`` (where the words
        begin), within ``reach``, is the sender."""
        last = None
        # Only the window is read (a subject word is short), never the rest of the text.
        for match in self.subjects.finditer(text, max(0, start - self.reach), start + _WORD):
            if match.start() > start:
                break
            last = match
        return last is not None and last.lastgroup == "sender"

    def missing_sender(self, text: str) -> bool:
        """Whether the text says the sender's address is missing and names no recipient:
        "550 5.1.1 Sender <s@example.org> does not exist" refuses the sender, while
        "<r@example.org>: Recipient address rejected: User unknown ...;
        sender=<s@example.org>" is the recipient's. The missing words follow the sender's
        within ``reach``, in the same clause (no comma or semicolon between) and with at
        most one address between (the sender's: "mail from <s@x>: <r@y> not found" says
        the second address is missing), or come right before them ("no such sender")."""
        if self.missing_after is None or self.missing_before is None:
            return False
        if self.missing_needs and not any(s in text for s in self.missing_needs):
            return False  # no missing words anywhere: no need to read whose they are
        said = False
        for match in self.subjects.finditer(text):
            if match.lastgroup != "sender":
                return False  # a recipient is named: the words may be about it
            if said:
                continue
            after = self.missing_after.search(text, match.end(), match.end() + self.reach)
            if after is not None:
                gap = text[match.end() : after.start()]
                said = not (";" in gap or "," in gap or gap.count("@") > 1)
            if not said:
                before = text[max(0, match.start() - _WORD) : match.start()]
                said = self.missing_before.search(before) is not None
        return said


def _of_sender(guard: SenderSubject, rule: TextRule, text: str, worth: Iterable[int]) -> bool:
    """Whether every place the reason's words begin has the sender as its subject."""
    starts = rule.starts(text, worth)
    return bool(starts) and all(guard.names_sender(text, start) for start in starts)


@dataclass
class Failure:
    """What is known of one failure, lowercased and normalised once."""

    code: int
    enhanced: str
    text: str
    command: str
    dtype: str
    action: str
    _said: dict[str, bool] = field(default_factory=dict)
    # Whether a reason of sender_subject had its words said of the sender.
    _sender_said: bool = False
    # The places of each reason's words that may match the text (ReplyRules.worth_searching).
    _worth: dict[str, list[int]] | None = None

    @property
    def temporary(self) -> bool:
        """Whether the reply itself was temporary (4.x.x, or 4xx without a status)."""
        return is_temporary(self.code, self.enhanced)


def code_keys(enhanced_status: str) -> tuple[str, ...]:
    """ "5.2.1" -> ("5.2.1", "x.2.1"): a code may be named with or without its class."""
    parts = enhanced_status.split(".")
    if len(parts) != 3:
        return ()
    return (enhanced_status, "x." + ".".join(parts[1:]))


def code_class(enhanced_status: str) -> str:
    """ "5.7.1" -> "x.7": the subject of a code, in either class."""
    parts = enhanced_status.split(".")
    return f"x.{parts[1]}" if len(parts) == 3 else ""


@dataclass(frozen=True)
class ReplyRules:
    reasons: dict[str, TextRule]
    code_names: dict[str, str]
    first_pass: tuple[str, ...]
    second_pass: tuple[str, ...]
    uncertain: frozenset[str]
    class_names: dict[str, str]
    diagnostic_types: dict[str, str]
    statuses: dict[str, int]
    local_agent_reasons: tuple[str, ...] = ()
    local_agent_codes: frozenset[str] = frozenset()  # a local program's codes that count
    # A local program's exit status (sysexits.h) given as the whole diagnostic, and the
    # reason it states (Sendmail's "X-Unix; 77").
    local_exit_statuses: dict[str, str] = field(default_factory=dict)
    # Reasons that, in a final failure no SMTP reply gave, mean the MTA gave up trying when
    # its words say it stopped retrying (a local program's failure at every try until the
    # retry period ran out).
    gave_up_local: frozenset[str] = frozenset()
    # Exit statuses of a local program (EX_TEMPFAIL, 75) that, in a final failure, say the
    # MTA ran it at every try until its retries ran out: those reasons then mean it gave up.
    gave_up_exits: frozenset[str] = frozenset()
    # An MTA's own words before a local program's exit status and output in a diagnostic of
    # another type (chasquid's "smtp; MDA delivery failed: exit status 77 - ..."), and the
    # diagnostic type they mean (``local_program`` in the rules file; its one group is the
    # exit status).
    local_program: re.Pattern[str] | None = None
    local_program_type: str = ""
    gave_up: str = ""  # the reason of a final failure of a temporary status with no reply
    # Reasons that, in a final failure no SMTP reply gave, mean the MTA gave up trying.
    gave_up_from: frozenset[str] = frozenset()
    # Statuses with which those reasons still mean that, besides none (X.4.1: no answer).
    gave_up_statuses: frozenset[str] = frozenset()
    # Reasons that, in a final failure of a temporary reply, mean the MTA gave up trying:
    # the reply named only the receiving server's own trouble.
    gave_up_replies: frozenset[str] = frozenset()
    # Hours the reporting MTA held a message before a final failure of a temporary reply
    # that says the retries ran out (0: never).
    gave_up_after_hours: float = 0.0
    sender_subject: SenderSubject | None = None
    # The reporting MTA's words that it gave a message up (``given_up``): a delay that says
    # them is final.
    given_up_words: re.Pattern[str] | None = None
    # Names (addresses, host names) masked before any words are read (``names``).
    names: NameMask | None = None

    def lowered(self, text: str) -> str:
        """The text as the rules read it: a reply's length at most, lowercased, its names
        masked (a recipient called quota@ says nothing of a quota)."""
        lowered = text[:MAX_TEXT].lower()
        return lowered if self.names is None else self.names.mask(lowered)

    @property
    def text(self) -> tuple[TextRule, ...]:
        """Every reason that has a text (and so a sample)."""
        return tuple(r for r in self.reasons.values() if r.words or r.other_script)

    @cached_property
    def _index(self) -> Index[tuple[str, int]]:
        return Index(
            ((rule.name, place), word.pattern)
            for rule in self.reasons.values()
            for place, word in enumerate(rule.words)
        )

    def worth_searching(self, failure: Failure) -> dict[str, list[int]]:
        """The places of each reason's words that may match the failure's text, read once:
        most of them cannot (see prefilter)."""
        if failure._worth is None:
            failure._worth = {}
            for name, place in self._index.candidates(failure.text, grams_of(failure.text)):
                failure._worth.setdefault(name, []).append(place)
        return failure._worth

    def _says(self, failure: Failure, name: str) -> bool:
        said = failure._said.get(name)
        if said is None:
            rule = self.reasons.get(name)
            worth = self.worth_searching(failure).get(name, ())
            said = rule is not None and rule.says(failure.text, worth)
            guard = self.sender_subject
            if guard is not None and rule is not None:
                if said and name in guard.reasons and _of_sender(guard, rule, failure.text, worth):
                    said = False
                    failure._sender_said = True
                elif not said and name == guard.reason:
                    said = self._sender_refused(failure, guard)
            if said and rule is not None and rule.permanent_text and failure.temporary:
                said = False
            if said and rule is not None and rule.delay_text and failure.action != "delayed":
                said = False
            failure._said[name] = said
        return said

    def _sender_refused(self, failure: Failure, guard: SenderSubject) -> bool:
        """Whether one of the guarded reasons' words was said of the sender, or, under a
        code of one of those reasons (5.1.1: only then would the code alone say 2), the
        words say the sender's address is missing in a reply that names no recipient."""
        for name in guard.reasons:
            self._says(failure, name)
        if failure._sender_said:
            return True
        return self.code_name(failure.enhanced) in guard.reasons and guard.missing_sender(
            failure.text
        )

    def code_name(self, enhanced: str) -> str:
        """The reason an enhanced status code names by itself (its most specific key in
        ``codes``), or "" when the rules give it none."""
        for key in code_keys(enhanced):
            if key in self.code_names:
                return self.code_names[key]
        return ""

    def _vetoed(self, f: Failure, rule: TextRule) -> bool:
        """Whether another reason's words overrule this reason's code (and its own words
        are not there to back it)."""
        return (
            bool(rule.veto)
            and any(self._says(f, v) for v in rule.veto)
            and not self._says(f, rule.name)
        )

    def _code_outranks(self, f: Failure, rule: TextRule) -> bool:
        """Whether the notice's status, or the reply's own status at the text's start ("451
        4.3.2 ..." under Sendmail's own 4.4.7), names a reason whose code outranks this
        reason's command (``yield_to_codes``)."""
        if not rule.yield_to_codes:
            return False
        own = _OWN_STATUS.match(f.text)
        statuses = (f.enhanced, f"{own.group(1)}.{own.group(2)}" if own else "")
        return any(self.code_name(status) in rule.yield_to_codes for status in statuses)

    def _first(self, f: Failure, code_name: str) -> str:
        for name in self.first_pass:
            rule = self.reasons[name]
            if f.command and f.command in rule.not_commands:
                continue
            # A veto (another reason's words overruling this one's code) yields to this
            # reason's own words: a 5.1.1 that says "not listed in the directory" is an
            # unknown user even though "listed" is also a blocklist's word. It is read only
            # where the stage or the code would make the failure this reason (a reason's
            # words are read once per failure, whichever check asks first).
            if (
                f.command
                and f.command in rule.commands
                and not self._vetoed(f, rule)
                and not self._code_outranks(f, rule)
            ):
                return name
            if code_name == name and not self._vetoed(f, rule):
                if not rule.code_needs_text or any(self._says(f, t) for t in rule.code_needs_text):
                    return name
            if rule.text_commands and (f.command or "NONE") not in rule.text_commands:
                continue
            if (
                not f.command
                and rule.not_with_classes
                and code_class(f.enhanced) in rule.not_with_classes
            ):
                continue
            if (
                not f.command
                and rule.text_commands
                and code_name
                and code_name not in self.uncertain
            ):
                # The stage is unknown and the code names a reason of its own: the text
                # alone is too weak to overrule it.
                continue
            if self._says(f, name) or (
                rule.also_texts and any(self._says(f, t) for t in rule.also_texts)
            ):
                return name
        return ""

    def _second(self, f: Failure, code_name: str) -> str:
        if f.dtype in self.diagnostic_types:
            # A local delivery program's own words on the mailbox are the destination's
            # verdict (no remote filter answered): they come before its generic failure.
            for name in self.local_agent_reasons:
                if self._says(f, name):
                    return name
            if code_name in self.local_agent_codes:
                return code_name
            if exit_reason := self.local_exit_statuses.get(_exit_status(f.text)):
                return exit_reason
        elif code_name and code_name not in self.uncertain:
            if not self._vetoed(f, self.reasons[code_name]):
                return code_name
            # The code's reason is overruled by words the first pass does not read
            # (policy-violation, not-accept): the second pass's words decide.
        for name in self.second_pass:
            if self._says(f, name):
                return name
        if code_name:
            return code_name
        if self._says(f, "syntax-error"):
            return "syntax-error"
        if (subject := code_class(f.enhanced)) in self.class_names:
            return self.class_names[subject]
        if f.dtype in self.diagnostic_types:
            return self.diagnostic_types[f.dtype]
        if f.action == "delayed":
            return "expired"
        if f.command in ("HELO", "CONN"):
            return "blocked"
        return "on-hold" if f.text.strip() else "undefined"

    def reason_for(
        self,
        code: int,
        enhanced_status: str,
        text: str,
        command: str = "",
        dtype: str = "",
        action: str = "",
    ) -> str:
        # Replies are short (RFC 5321: 512 octets a line); a huge diagnostic is read in part,
        # so that no pattern's cost grows with it.
        lowered = self.lowered(text)
        failure = Failure(code, enhanced_status, lowered, command.upper(), dtype.lower(), action)
        code_name = self.code_name(enhanced_status)
        if failure.dtype not in self.diagnostic_types:
            found = self._first(failure, code_name)
            if found:
                return found
        return self._second(failure, code_name)

    def says_given_up(self, code: int, text: str) -> bool:
        """Whether the reporting MTA's own words in a diagnostic say it gave the message up:
        the words before the remote server's reply (``code``), if one is quoted."""
        if self.given_up_words is None:
            return False
        own = self.lowered(text)
        if code and (reply := own.find(str(code))) >= 0:
            own = own[:reply]
        return self.given_up_words.search(own) is not None

    def status_of(self, reason: str) -> int:
        return self.statuses.get(reason, 99)

    def classify(self, code: int, enhanced_status: str, text: str) -> Classification:
        reason = self.reason_for(code, enhanced_status, text, command=reply_command(code))
        return Classification(self.status_of(reason), is_permanent(code, enhanced_status), reason)


def _local_program_text(rules: ReplyRules, text: str, dtype: str) -> tuple[str, str]:
    """A diagnostic that reports a local delivery program's exit status and output in the
    MTA's own words under another type (``local_program``), as the local program's type
    gives it: the exit status first, then what the program said ("77 Sorry, ...")."""
    if rules.local_program is None or dtype.lower() in rules.diagnostic_types:
        return text, dtype
    found = rules.local_program.match(text)
    if found is None:
        return text, dtype
    return f"{found.group(1)} {text[found.end() :]}", rules.local_program_type


def _exit_status(text: str) -> str:
    """The exit status a local program's diagnostic begins with (Sendmail's "X-Unix; 77",
    the program's words after it), or ''."""
    first = text.split(maxsplit=1)[:1]
    return first[0] if first and first[0].isdigit() else ""


def reply_command(code: int) -> str:
    """The command an SMTP reply answered, when the caller does not know it.

    A sender's failed attempt is mostly a RCPT answer: a reply to DATA about a recipient
    says so in its text (the DATA rules look for that), so the recipient rules apply."""
    return "RCPT" if code else ""


def _gave_up(code: int, enhanced_status: str, action: str) -> bool:
    """A final failure of a temporary status that no SMTP reply gave: the reporting MTA's
    own words on the last temporary error, when it stopped retrying (``gave_up`` in the
    rules file says why that is the message's expiry)."""
    return action == "failed" and not code and enhanced_status.startswith("4.")


def _tried_until_final(code: int, enhanced_status: str, action: str) -> bool:
    """A final failure with no SMTP reply and no status, or one that says no host answered
    (``gave_up_statuses``): the reporting MTA stopped trying to reach the destination
    (``gave_up_from`` in the rules file)."""
    if action != "failed" or code:
        return False
    return not enhanced_status or enhanced_status in reply_rules().gave_up_statuses


def _stopped_trying(rules: ReplyRules, code: int, action: str, text: str) -> bool:
    """A final failure with no SMTP reply whose own words say the reporting MTA stopped
    retrying (the ``gave_up`` reason's words), whatever its status: Haraka reports every
    connection it could not make under X.1.2 and says "Too many failures (Tried all MXs)"
    when its retries ran out (round 33)."""
    if action != "failed" or code or not rules.gave_up:
        return False
    return rules.reasons[rules.gave_up].says(rules.lowered(text))


def _gave_up_on_reply(
    rules: ReplyRules, code: int, enhanced_status: str, action: str, text: str = ""
) -> bool:
    """A final failure of a temporary SMTP reply: the reporting MTA got "not now" and
    stopped trying (``gave_up_replies`` in the rules file)."""
    if action != "failed" or not code:
        return False
    return (
        is_temporary(code, enhanced_status)
        or _class_rewritten(code, enhanced_status, text)
        or _undefined_status_given_up(rules, code, enhanced_status, text)
    )


def _undefined_status_given_up(
    rules: ReplyRules, code: int, enhanced_status: str, text: str
) -> bool:
    """A 4xx reply under the undefined status 5.0.0 whose diagnostic says the MTA gave up
    (the ``given_up`` words): Exim writes every final failure 5.0.0 and adds ": retry timeout
    exceeded" to the last temporary reply (round 67)."""
    if not 400 <= code < 500 or enhanced_status != "5.0.0" or rules.given_up_words is None:
        return False
    return rules.given_up_words.search(rules.lowered(text)) is not None


# The reply's own enhanced status, right after its code ("451 4.3.0 ...").
_OWN_STATUS = re.compile(r"\s*\d{3}[ -]([245])\.(\d{1,3}\.\d{1,3})\b")


def _class_rewritten(code: int, enhanced_status: str, text: str) -> bool:
    """A 4xx reply quoted with its own 4.x.x whose status the reporting MTA turned into
    5.x.x (the same subject and detail) when it gave up: the reply was temporary. Haraka's
    final notice of "451 4.3.0 Temporary lookup failure" says Status 5.3.0 (round 33)."""
    if not 400 <= code < 500 or not enhanced_status.startswith("5."):
        return False
    own = _OWN_STATUS.match(text)
    return own is not None and own.group(1) == "4" and own.group(2) == enhanced_status[2:]


def is_temporary(code: int, enhanced_status: str) -> bool:
    """Whether a reply was temporary: its enhanced status's class, else its code's (one
    test for the classifier and the mail parser, which asks it of a final failure)."""
    if enhanced_status[:1] in ("4", "5"):
        return enhanced_status[:1] == "4"
    return 400 <= code < 500


def _held_until_final(code: int, enhanced_status: str, action: str, hours: float) -> bool:
    """A final failure of a temporary reply, reported after the MTA held the message for
    ``gave_up_after_hours`` or more: it retried until its queue lifetime ran out."""
    if action != "failed" or not 0 < reply_rules().gave_up_after_hours <= hours:
        return False
    return is_temporary(code, enhanced_status)


def is_permanent(code: int, enhanced_status: str, action: str = "") -> bool:
    if action == "delayed":
        return False
    if action == "failed":
        return True
    if enhanced_status[:1] in ("4", "5"):
        return enhanced_status[:1] == "5"
    return code >= 500 or code == 0


def lower_pattern(pattern: str) -> str:
    """A pattern for lowercased text: letters lowered, escapes (\\S, \\d, \\b) kept.

    Matching lowercased text without re.IGNORECASE is more than twice as fast, and the
    classifier runs dozens of these per failure."""
    out = []
    escaped = False
    for char in pattern:
        out.append(char if escaped else char.lower())
        escaped = not escaped and char == "\\"
    return "".join(out)


_CLASS = re.compile(r"\[([^\]\\]*)\]")


def _ascii_spelling(alternative: str) -> str:
    """``buz[oó]n`` -> ``buzon``: the spelling without accents that bounces often use."""

    def plain(match: re.Match[str]) -> str:
        kept = "".join(c for c in match.group(1) if c.isascii())
        if not kept or kept.startswith("^"):
            return match.group(0)  # nothing plain in it, or a negated class: as it is
        return kept if len(kept) == 1 else f"[{kept}]"

    return _CLASS.sub(plain, alternative)


def _split_scripts(pattern: str) -> tuple[tuple[re.Pattern[str], ...], tuple[re.Pattern[str], ...]]:
    """(ASCII alternatives, the others), each compiled for lowercased text. An alternative
    with accents is also looked for without them."""
    parts = alternatives(lower_pattern(pattern))
    ascii_parts = [p for p in parts if p.isascii()]
    other = [p for p in parts if not p.isascii()]
    ascii_parts += [a for a in map(_ascii_spelling, other) if a.isascii()]
    return _by_first_letter(ascii_parts), _by_first_letter(other)


def _by_first_letter(parts: list[str]) -> tuple[re.Pattern[str], ...]:
    """The alternatives as one pattern per first letter: ``user unknown|unknown user|user
    not found`` -> ``user unknown|user not found`` and ``unknown user``.

    Python's regular expressions try every alternative at every position of a text, but a
    pattern whose alternatives share a first letter is looked for by that letter (the
    parser hoists a common prefix), several times faster over a whole rules file. Only
    whether a reason's words occur is read, never which alternative matched."""
    groups: dict[str, list[str]] = {}
    for part in parts:
        first = part[:1]
        key = first if first.isalnum() and part[1:2] not in ("?", "*", "+", "{") else part
        groups.setdefault(key, []).append(part)
    return tuple(re.compile("|".join(group)) for group in groups.values())


def _names(raw: object) -> tuple[str, ...]:
    return tuple(str(x) for x in raw) if isinstance(raw, list) else ()


def _rule(name: str, raw: dict[str, object]) -> TextRule:
    commands = frozenset(c.upper() for c in _names(raw.get("text_commands")))
    on = frozenset(c.upper() for c in _names(raw.get("commands")))
    off = frozenset(c.upper() for c in _names(raw.get("not_commands")))
    unknown = (commands | on | off) - _COMMANDS
    if unknown:
        raise ValueError(f"reason {name!r}: unknown SMTP command {sorted(unknown)}")
    wordings = tuple(
        Wording(str(t["text"]), str(t["sample"]), str(t.get("from", "")))
        for t in raw.get("texts") or []  # type: ignore[attr-defined]
    )
    words = [str(raw["pattern"])] if raw.get("pattern") else []
    words += [w.text for w in wordings]
    unless = raw.get("unless")
    ascii_words, other_words = _split_scripts("|".join(words)) if words else ((), ())
    return TextRule(
        name=name,
        status=int(raw["status"]),  # type: ignore[call-overload]
        words=ascii_words,
        other_script=other_words,
        wordings=wordings,
        sample=str(raw.get("sample", "")),
        unless=re.compile(lower_pattern(str(unless))) if unless else None,
        permanent_text=bool(raw.get("permanent_text")),
        delay_text=bool(raw.get("delay_text")),
        codes=frozenset(_names(raw.get("codes"))),
        text_commands=commands,
        veto=_names(raw.get("veto")),
        code_needs_text=_names(raw.get("code_needs_text")),
        also_texts=_names(raw.get("also_texts")),
        commands=on,
        not_commands=off,
        not_with_classes=frozenset(_names(raw.get("not_with_classes"))),
        yield_to_codes=frozenset(_names(raw.get("yield_to_codes"))),
    )


def _sender_subject(raw: object) -> SenderSubject | None:
    if not isinstance(raw, dict):
        return None
    sender = lower_pattern(str(raw["sender"]))
    recipient = lower_pattern(str(raw["recipient"]))
    after, before = raw.get("missing_after"), raw.get("missing_before")
    return SenderSubject(
        reasons=frozenset(_names(raw.get("reasons"))),
        reason=str(raw["reason"]),
        reach=int(raw["reach"]),
        subjects=re.compile(
            f"(?P<sender>{_one_boundary(sender)})|(?P<recipient>{_one_boundary(recipient)})"
        ),
        missing_after=re.compile(lower_pattern(str(after))) if after else None,
        # right before the sender's words: only white space between
        missing_before=re.compile(f"(?:{lower_pattern(str(before))})\\s+$") if before else None,
        missing_needs=(
            _needs(lower_pattern(str(after)), lower_pattern(str(before)))
            if after and before
            else frozenset()
        ),
    )


def _one_boundary(pattern: str) -> str:
    """``\\bsender|\\bhelo\\b|exp[ée]diteur`` -> ``\\b(?:sender|helo\\b)|exp[ée]diteur``: a
    run of alternatives that each begin at a word boundary tested for it once.

    Python's regular expressions try every alternative at every position of a text, and a
    boundary is read through Unicode's tables on both sides each time: the sender and
    recipient words (some forty alternatives, nearly all at a boundary) cost about a sixth of
    the classifier's instructions per failure (round 83). The alternatives are tried in the
    same order and the boundary takes no characters, so every match is the same."""
    out: list[str] = []
    run: list[str] = []
    for part in [*alternatives(pattern), None]:
        if part is not None and part.startswith("\\b"):
            run.append(part[2:])
            continue
        if run:
            out.append("\\b" + (f"(?:{'|'.join(run)})" if len(run) > 1 else run[0]))
            run = []
        if part is not None:
            out.append(part)
    return "|".join(out)


def _needs(*patterns: str) -> frozenset[str]:
    """Strings one of which a text must hold for any of the patterns to match (empty: none
    to tell)."""
    found: set[str] = set()
    for pattern in patterns:
        strings = required(pattern)
        if strings is None:
            return frozenset()
        found |= strings
    return frozenset(found)


def _given_up(raw: object) -> re.Pattern[str] | None:
    if not isinstance(raw, dict) or not raw.get("pattern"):
        return None
    return re.compile(lower_pattern(str(raw["pattern"])))


def _local_program(raw: object) -> re.Pattern[str] | None:
    # matched at the diagnostic's start as it is (anchored: most fail at its first letter)
    if not isinstance(raw, dict) or not raw.get("pattern"):
        return None
    return re.compile(str(raw["pattern"]), re.IGNORECASE)


@cache
def reply_rules() -> ReplyRules:
    raw = yaml.safe_load(
        resources.files("postline.bounce.rules").joinpath("smtp_replies.yaml").read_text("utf-8")
    )
    reasons = {name: _rule(name, body) for name, body in raw["reasons"].items()}
    code_names: dict[str, str] = {}
    for rule in reasons.values():
        for code in rule.codes:
            if code in code_names:
                raise ValueError(f"code {code} named by {code_names[code]} and {rule.name}")
            code_names[code] = rule.name
    rules = ReplyRules(
        reasons=reasons,
        code_names=code_names,
        first_pass=_names(raw["first_pass"]),
        second_pass=_names(raw["second_pass"]),
        uncertain=frozenset(_names(raw["uncertain"])),
        class_names={str(k): str(v) for k, v in raw["class_names"].items()},
        diagnostic_types={str(k): str(v) for k, v in raw["diagnostic_types"].items()},
        statuses={name: rule.status for name, rule in reasons.items()},
        local_agent_reasons=_names(raw.get("local_agent_reasons")),
        local_agent_codes=frozenset(_names(raw.get("local_agent_codes"))),
        local_exit_statuses={
            str(k): str(v) for k, v in (raw.get("local_exit_statuses") or {}).items()
        },
        gave_up_local=frozenset(_names(raw.get("gave_up_local"))),
        gave_up_exits=frozenset(_names(raw.get("gave_up_exits"))),
        local_program=_local_program(raw.get("local_program")),
        local_program_type=str((raw.get("local_program") or {}).get("type") or ""),
        gave_up=str(raw.get("gave_up") or ""),
        gave_up_from=frozenset(_names(raw.get("gave_up_from"))),
        gave_up_statuses=frozenset(_names(raw.get("gave_up_statuses"))),
        gave_up_replies=frozenset(_names(raw.get("gave_up_replies"))),
        gave_up_after_hours=float(raw.get("gave_up_after_hours") or 0),
        sender_subject=_sender_subject(raw.get("sender_subject")),
        given_up_words=_given_up(raw.get("given_up")),
        names=name_mask(raw.get("names")),
    )
    named = {*rules.first_pass, *rules.second_pass, *rules.uncertain, *rules.class_names.values()}
    named |= {*rules.diagnostic_types.values(), "syntax-error", "expired", "blocked", "on-hold"}
    named |= set(rules.local_agent_reasons) | rules.local_agent_codes
    named |= set(rules.local_exit_statuses.values()) | rules.gave_up_local
    named |= {rules.gave_up} - {""}
    if rules.local_program is not None and rules.local_program_type not in rules.diagnostic_types:
        raise ValueError("local_program's type must be one of diagnostic_types")
    named |= rules.gave_up_from | rules.gave_up_replies
    if rules.sender_subject is not None:
        named |= rules.sender_subject.reasons | {rules.sender_subject.reason}
        if rules.sender_subject.reason in rules.sender_subject.reasons:
            raise ValueError("sender_subject's reason cannot be one of its reasons")
    for rule in reasons.values():
        named |= {*rule.veto, *rule.code_needs_text, *rule.also_texts, *rule.yield_to_codes}
    missing = named - reasons.keys()
    if missing:
        raise ValueError(f"rules name reasons they do not define: {sorted(missing)}")
    return rules


def classify_reply(code: int, enhanced_status: str, text: str) -> Classification:
    """An SMTP reply as a sender received it."""
    return reply_rules().classify(code, enhanced_status, text)


def classify_failure(
    code: int,
    enhanced_status: str,
    text: str,
    *,
    command: str = "",
    diagnostic_type: str = "",
    action: str = "",
    hint: str = "",
    context: str = "",
    queued_hours: float = 0.0,
) -> Classification:
    """A failure with what else is known of it (a bounce mail's recipient, usually);
    ``context`` is read when ``text`` names no reason; ``queued_hours`` is how long the
    reporting MTA held the message (its report's Arrival-Date to the notice)."""
    rules = reply_rules()
    text, diagnostic_type = _local_program_text(rules, text, diagnostic_type)
    reason = hint if hint in rules.reasons else ""
    if not reason:
        reason = rules.reason_for(code, enhanced_status, text, command, diagnostic_type, action)
    if reason in _NO_REASON and context:
        reason = rules.reason_for(code, enhanced_status, context, command, diagnostic_type, action)
    if reason in _NO_REASON and rules.gave_up and _gave_up(code, enhanced_status, action):
        reason = rules.gave_up
    elif reason in rules.gave_up_from and (
        _tried_until_final(code, enhanced_status, action)
        or _stopped_trying(rules, code, action, text)
    ):
        reason = rules.gave_up
    elif reason in rules.gave_up_replies and _gave_up_on_reply(
        rules, code, enhanced_status, action, text
    ):
        reason = rules.gave_up
    elif reason in rules.gave_up_local and (
        _stopped_trying(rules, code, action, text)
        or (action == "failed" and rules.code_name(enhanced_status) == rules.gave_up)
        or (action == "failed" and not code and _exit_status(text) in rules.gave_up_exits)
    ):
        reason = rules.gave_up
    elif reason in _NO_REASON and _held_until_final(code, enhanced_status, action, queued_hours):
        reason = rules.gave_up
    # Words of giving up outrank a delay's template: the MTA will send no other notice.
    permanent = is_permanent(code, enhanced_status, action) or (
        action == "delayed" and rules.says_given_up(code, text)
    )
    return Classification(rules.status_of(reason), permanent, reason)
