"""Metamorphic measurement of the bounce classifier under entity substitutions (issue #16,
round 74).

    .venv/bin/python bench/bounce_accuracy/entities.py [--corpus DIR] [--wider DIR]
        [--generated DIR] [--rewrite NAME ...] [--unseen-changes] [--no-published]

Round 73 (``invariance.py``) rewrote a mail's form. This asks whether the *names* a mail
carries change the answer: the recipient's local part, the host names of the reporting and
remote MTAs, IPv4 addresses, queue ids and Message-IDs name no failure, yet real hosts are
called ``spamfilter.hoster.de`` or ``mx-quota.example`` and real users ``spam`` or ``quota``.
Each rewrite here replaces such names consistently across the whole mail (the top header,
the notice's text, the report's fields, the returned message) and says how an address the
classifier answers reads afterwards, so that the answers before and after compare: the same
kind, the same recipients (renamed), and per recipient the same status and delivery.

A rewrite answers ``None`` (skipped, never "unchanged") where the mail names nothing of its
kind, where a name also appears where the bytes are not plain (a base64 or quoted-printable
part, an RFC 2047 encoded word: checked by decoding every part and field afterwards), or
where the standard library would read another structure afterwards (round 73's guard).

Names kept, and why: a DNS blocklist's zone (``zen.spamhaus.org``: its name is the evidence
of the refusal) and a provider's domain the rules name to recognise its notices
(``KEPT_DOMAINS``, from ``mail_formats.yaml``'s hints) keep their registrable part; a host's
parent domains that are an address's domain in the mail stay, so that "the notice comes
from the recipient's own domain" (Exim's ``own_domain`` hint) reads the same; a host that is
a labelled recipient's domain is not renamed (that would rename the recipient); loopback
addresses (127/8: a blocklist's answer code, ``127.0.0.2``) keep their number.
"""

from __future__ import annotations

import email
import email.errors
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from email.header import decode_header, make_header
from functools import cached_property

try:  # imported as bench.bounce_accuracy.entities (the tests)
    from .invariance import Rewrite, _guarded
except ImportError:  # run as a script from its folder, as run.py and invariance.py are
    from invariance import Rewrite, _guarded  # type: ignore[no-redef]

# Words a name may hold that a classifier must not read as a cause (round 74's brief: what
# real hosts and users are called).
TRAP_WORDS = (
    "quota",
    "spam",
    "blocked",
    "unknown",
    "virus",
    "full",
    "relay",
    "expired",
    "timeout",
    "nosuchuser",
    "toolarge",
    "denied",
)
NEUTRAL_LOCAL = "amelie.varga"

# Registrable domains whose names are evidence: DNS blocklists' zones, and the providers
# whose domains ``rules/mail_formats.yaml``'s hints name (Google's groups, MessageLabs,
# MXLogic, the Japanese mobile carriers).
KEPT_DOMAINS = (
    "spamhaus.org",
    "spamcop.net",
    "sorbs.net",
    "barracudacentral.org",
    "surbl.org",
    "uribl.com",
    "google.com",
    "googlemail.com",
    "messagelabs.com",
    "mxlogic.net",
    "docomo.ne.jp",
    "ezweb.ne.jp",
    "au.com",
    "softbank.ne.jp",
    "softbank.jp",
    "vodafone.ne.jp",
    "disney.ne.jp",
)

# a local part's start, or after qmail's prefix of a virtual domain's user ("491-user@")
_LOCAL_BEFORE = r"(?:(?<![\w.!#$%&'*+/=?^`{|}~-])|(?<=\d-))"
_NAME_BEFORE = r"(?<![\w.-])"
_NAME_AFTER = r"(?![\w-]|\.[\w-])"
_HOST = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+"
_IPV4 = re.compile(_NAME_BEFORE + r"((?:\d{1,3}\.){3}\d{1,3})" + _NAME_AFTER)
_ADDRESS = re.compile(r"([^\s<>()\[\]\"',;:@]+)@(" + _HOST + r")", re.I)


@dataclass(frozen=True)
class Names:
    """A consistent renaming: each pattern (one name with its boundaries) and what replaces
    it, applied to the mail's bytes and to the addresses the classifier answers."""

    pairs: tuple[tuple[str, str], ...]  # (pattern, replacement), case-insensitive

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        # one pass: a replacement is never read again as a name
        return re.compile("|".join(f"({p})" for p, _ in self.pairs), re.I)

    def text(self, value: str) -> str:
        if not self.pairs:
            return value
        return self._pattern.sub(lambda m: self.pairs[m.lastindex - 1][1], value)  # type: ignore[operator]

    def mail(self, raw: bytes) -> bytes | None:
        """The mail renamed; None when a name is left where its bytes are not plain."""
        if not self.pairs:
            return None
        after = self.text(raw.decode("latin-1")).encode("latin-1")
        after = _guarded(raw, after)
        if after is None or self._left_in(after):
            return None
        return after

    def _left_in(self, raw: bytes) -> bool:
        """Whether a name is still there once every part is decoded and every field's
        encoded words read: it appeared in a form the byte-level rename could not reach."""
        return any(self._pattern.search(text) for text in _decoded(raw))


def _decoded(raw: bytes) -> Iterable[str]:
    for part in email.message_from_bytes(raw).walk():
        for name, value in part.items():
            try:
                yield name + ": " + str(make_header(decode_header(str(value))))
            except (LookupError, UnicodeError, ValueError, email.errors.HeaderParseError):
                yield name + ": " + str(value)
        if not part.is_multipart():
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                charset = part.get_content_charset() or "latin-1"
                try:
                    yield payload.decode(charset, "replace")
                except LookupError:
                    yield payload.decode("latin-1")


def _fresh(made: Callable[[str], str], base: str, taken: set[str]) -> str:
    """``made(base)``, or ``made(base + "-2")``... the first the mail does not hold yet (two
    names never become one)."""
    name, n = made(base), 1
    while name.lower() in taken:
        n += 1
        name = made(f"{base}-{n}")
    taken.add(name.lower())
    return name


def _in_mail(raw: bytes) -> str:
    return raw.decode("latin-1").lower()


# --- what a mail names ----------------------------------------------------------------------


def recipients_of(recipients: Sequence[str]) -> list[str]:
    """The labelled addresses a rewrite renames (not the reference library's invented
    ``*.invalid``), lowercased, each once."""
    out: list[str] = []
    for r in recipients:
        r = (r or "").strip().lower()
        if "@" in r and not r.endswith(".invalid") and r not in out:
            out.append(r)
    return out


_MTA_FIELD = re.compile(
    r"^(?:reporting|remote|received-from)-mta[ \t]*:[ \t]*dns[ \t]*;[ \t]*(" + _HOST + r")",
    re.I | re.M,
)
_RECEIVED = re.compile(r"^received:((?:.*)(?:\r?\n[ \t].*)*)", re.I | re.M)
_FROM_BY = re.compile(r"\b(?:from|by)\s+(" + _HOST + r")", re.I)
_BEFORE_IP = re.compile(
    r"(?<![\w.@-])(" + _HOST + r")\s?[\[(](?:ipv4:)?\d{1,3}(?:\.\d{1,3}){3}[\])]", re.I
)
_HOST_WORD = re.compile(r"\bhost\s+(" + _HOST + r")", re.I)


def hosts_of(text: str) -> list[str]:
    """The MTAs' host names a mail or a reply names: the report's Reporting-MTA, Remote-MTA
    and Received-From-MTA, the Received fields' "from" and "by" names, a name before an IP
    literal ("mx.example.org[192.0.2.1]") and after "host"; lowercased, each once, a name
    whose last label is no word (an IP address) left out."""
    found: list[str] = []
    for pattern in (_MTA_FIELD, _BEFORE_IP, _HOST_WORD):
        found += [m.group(1) for m in pattern.finditer(text)]
    for received in _RECEIVED.finditer(text):
        found += [m.group(1) for m in _FROM_BY.finditer(received.group(1))]
    out: list[str] = []
    for host in found:
        host = host.lower().rstrip(".")
        if re.search(r"\.[a-z][a-z0-9-]*$", host) and host not in out:
            out.append(host)
    return out


def _kept_suffix(host: str, domains: Iterable[str]) -> str:
    """The part of ``host`` a neutral renaming keeps: the longest parent domain that is a
    kept provider's or blocklist's domain or an address's domain in the mail, else its
    registrable domain (two labels, three under a short second level: ``ne.jp``)."""
    best = ""
    for domain in (*KEPT_DOMAINS, *domains):
        if (host == domain or host.endswith("." + domain)) and len(domain) > len(best):
            best = domain
    if best:
        return best
    labels = host.split(".")
    keep = 3 if len(labels) > 2 and len(labels[-2]) <= 3 and len(labels[-1]) == 2 else 2
    return ".".join(labels[-keep:])


_MESSAGE_ID = re.compile(
    r"^(?:message-id|x-original-message-id|original-message-id)[ \t]*:[ \t]*(?:\r?\n[ \t]+)?"
    r"<([^<>@\s]+)@[^<>\s]+>",
    re.I | re.M,
)
_QUEUE_FIELD = re.compile(r"^x-postfix-queue-id[ \t]*:[ \t]*([A-Za-z0-9]+)", re.I | re.M)
_RECEIVED_ID = re.compile(r"\bid\s+<?([A-Za-z0-9][A-Za-z0-9._-]*[A-Za-z0-9])", re.I)


def ids_of(text: str) -> list[str]:
    """Message-IDs' left parts and queue ids: Postfix's X-Postfix-Queue-ID, a Received
    field's "id" clause; only tokens of six characters or more with a digit (an id, not a
    word), each once."""
    found = [m.group(1) for m in _MESSAGE_ID.finditer(text)]
    found += [m.group(1) for m in _QUEUE_FIELD.finditer(text)]
    for received in _RECEIVED.finditer(text):
        found += [m.group(1) for m in _RECEIVED_ID.finditer(received.group(1))]
    out: list[str] = []
    for token in found:
        if len(token) >= 6 and re.search(r"\d", token) and token.lower() not in out:
            out.append(token.lower())
    return out


# --- the renamings --------------------------------------------------------------------------


def local_parts(word: str) -> Callable[[str, Sequence[str]], Names]:
    """Each labelled recipient's local part replaced by ``word`` (a second recipient
    ``word-2``...), wherever the address is written; the domain stays."""

    def names(text: str, recipients: Sequence[str]) -> Names:
        taken = {m.group(0).lower() for m in _ADDRESS.finditer(text)}
        pairs = []
        for address in recipients_of(recipients):
            local, _, domain = address.rpartition("@")
            new = _fresh(lambda local, domain=domain: f"{local}@{domain}", word, taken)
            pattern = _LOCAL_BEFORE + re.escape(local) + "@" + re.escape(domain) + _NAME_AFTER
            pairs.append((pattern, new))
        return Names(tuple(pairs))

    return names


HostRename = Callable[[str, str, int], str | None]  # (host, kept suffix, its number)


def _hosts_renamed(rename: HostRename) -> Callable[[str, Sequence[str]], Names]:
    def names(text: str, recipients: Sequence[str]) -> Names:
        own = {a.rpartition("@")[2] for a in recipients_of(recipients)}
        domains = {m.group(2).lower() for m in _ADDRESS.finditer(text)}
        taken = set(re.findall(_HOST, text.lower()))
        pairs = []
        # longest first: a host renamed before a name it ends with
        for n, host in enumerate(sorted(hosts_of(text), key=len, reverse=True), 1):
            if host in own:
                continue
            new = rename(host, _kept_suffix(host, domains), n)
            if new is not None and new != host:
                label, _, rest = new.partition(".")
                new = _fresh(lambda label, rest=rest: f"{label}.{rest}", label, taken)
                pairs.append((_NAME_BEFORE + re.escape(host) + _NAME_AFTER, new))
        return Names(tuple(pairs))

    return names


def host_label(word: str) -> Callable[[str, Sequence[str]], Names]:
    """A label ``word.`` put before each MTA host name (``spam.mx.example.org``): a host
    may be called anything under its domain."""
    return _hosts_renamed(lambda host, kept, n: f"{word}.{host}")


def host_neutral() -> Callable[[str, Sequence[str]], Names]:
    """Each MTA host name's own labels (left of the part ``_kept_suffix`` keeps) replaced
    by ``mtaN``: ``spamfilter.hoster.de`` -> ``mta1.hoster.de``."""
    return _hosts_renamed(lambda host, kept, n: None if host == kept else f"mta{n}.{kept}")


def _routable(address: str) -> bool:
    octets = [int(o) for o in address.split(".")]
    return all(o <= 255 for o in octets) and octets[0] not in (0, 127, 255)


def ipv4_renumbered(text: str, recipients: Sequence[str]) -> Names:
    """Each IPv4 address (not loopback 127/8, whose numbers are a blocklist's answer, nor
    0/8 or 255/8) given another number of the documentation ranges (RFC 5737) the mail does
    not hold; a dotted quad inside a name (``2.0.0.127.zen.spamhaus.org``) is left."""
    found = []
    for m in _IPV4.finditer(text):
        if _routable(m.group(1)) and m.group(1) not in found:
            found.append(m.group(1))
    taken = set(found)
    pool = (f"{net}.{n}" for net in ("203.0.113", "198.51.100", "192.0.2") for n in range(9, 250))
    pairs = []
    for address in found:
        new = next(p for p in pool if p not in taken)
        pairs.append((_NAME_BEFORE + re.escape(address) + _NAME_AFTER, new))
    return Names(tuple(pairs))


def ids_renamed(trap: bool) -> Callable[[str, Sequence[str]], Names]:
    """Each Message-ID's left part and queue id replaced: by ``R74ID`` and a number, or
    (``trap``) by the trap words joined (``quota.spam...denied.1``)."""

    def names(text: str, recipients: Sequence[str]) -> Names:
        taken = {t.lower() for t in re.findall(r"[\w.-]+", text)}
        pairs = []
        for n, token in enumerate(ids_of(text), 1):
            base = ".".join(TRAP_WORDS) + f".{n}" if trap else f"R74ID{n:06d}"
            new = _fresh(str, base, taken)
            pairs.append((r"(?<![\w.-])" + re.escape(token) + r"(?![\w-]|\.[\w-])", new))
        return Names(tuple(pairs))

    return names


Renaming = Callable[[str, Sequence[str]], Names]

RENAMINGS: dict[str, Renaming] = {
    "local_neutral": local_parts(NEUTRAL_LOCAL),
    **{f"local_{w}": local_parts(w) for w in TRAP_WORDS},
    "host_neutral": host_neutral(),
    **{f"host_{w}": host_label(w) for w in TRAP_WORDS},
    "ipv4_renumbered": ipv4_renumbered,
    "ids_neutral": ids_renamed(trap=False),
    "ids_trap": ids_renamed(trap=True),
}


def as_rewrite(renaming: Renaming) -> Rewrite:
    """A renaming as ``invariance.measure`` applies it: the mail renamed, and how an
    address the classifier answered reads after it."""

    def rewrite(raw: bytes, recipients: Sequence[str]) -> tuple[bytes, Callable[[str], str]] | None:
        names = renaming(_in_mail(raw), recipients)
        after = names.mail(raw)
        return None if after is None else (after, names.text)

    return rewrite


REWRITES: dict[str, Rewrite] = {name: as_rewrite(r) for name, r in RENAMINGS.items()}


# --- published replies ------------------------------------------------------------------------


def reply_renamed(line: str, name: str) -> str | None:
    """A published reply (a line of text, not a mail) under the same renaming: its addresses
    are the recipients, its hosts those ``hosts_of`` finds in it; None where it names
    nothing of the kind."""
    recipients = [m.group(0) for m in _ADDRESS.finditer(line)]
    names = RENAMINGS[name](line.lower(), recipients)
    if not names.pairs:
        return None
    after = names.text(line)
    return None if after == line else after


def main() -> None:
    import argparse

    from invariance import add_set_arguments, labelled_sets, measure, print_table
    from published import replies as published_replies
    from run import enhanced_status, reply_code

    from postline.bounce.classify import classify_reply

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_set_arguments(parser)
    parser.add_argument("--rewrite", action="append", choices=sorted(REWRITES))
    parser.add_argument("--no-published", action="store_true")
    args = parser.parse_args()
    chosen = {n: REWRITES[n] for n in args.rewrite} if args.rewrite else REWRITES
    results = {
        name: measure(name, base, rows, chosen, listed)
        for name, base, rows, listed in labelled_sets(args)
    }
    print_table(results)
    if args.no_published:
        return
    print(f"\n{'published replies':<18} {'rewrite':<18} {'applied':>8} {'changed':>8}")
    rows = published_replies()
    for name in chosen:
        applied = changed = 0
        for row in rows:
            after = reply_renamed(row.line, name)
            if after is None:
                continue
            applied += 1
            before = classify_reply(reply_code(row.line), enhanced_status(row.line), row.line)
            now = classify_reply(reply_code(after), enhanced_status(after), after)
            if (before.status, before.permanent) != (now.status, now.permanent):
                changed += 1
                print(
                    f"CHANGED published {name} [{row.provider}] "
                    f"{before.status} -> {now.status}: {after[:150]}"
                )
        print(f"{'published (' + str(len(rows)) + ')':<18} {name:<18} {applied:>8} {changed:>8}")


if __name__ == "__main__":
    main()
