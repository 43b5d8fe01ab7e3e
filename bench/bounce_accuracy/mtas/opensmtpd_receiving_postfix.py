"""OpenSMTPD as the RECEIVING server, refusing and deferring with its own ``smtpd.conf`` rules
and built-in filters, in other MTAs' notices (round 65). Debian 12's opensmtpd (6.8.0p2,
unpacked under :data:`ROOT`, never installed; until now it ran here only as a sending MTA,
``opensmtpd.py``) runs one daemon in the foreground (``smtpd -d``) with five listeners on
127.0.0.1 (:data:`PORTS`), in a mount and UTS namespace of its own (``opensmtpd.receiving``
and ``opensmtpd.mounts``: a private ``/var``, its two users and :data:`MAILUSER` added to
copies of the system's ``/etc/passwd`` and ``/etc/group``) whose private ``/etc/resolv.conf``
names the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`): it knows no name
but ``sender.test``, so the sending clients' addresses have no PTR record. The sending MTA
(this module: a second instance of the system's Postfix; ``opensmtpd_receiving_exim`` and
``_sendmail`` the others) sends to it from a loopback address of its own (:data:`CLIENTS`) and
writes the notices.

What each listener refuses or defers (smtpd.conf(5)'s rules and its MAIL FILTERING's
built-in filters; the reject texts of the filters are the administrator's, the two of the
``rdns`` and ``fcrdns`` listeners OpenBSD's own manual's example):

* ``main``: :data:`LOCAL` delivered through a ``virtual`` table (its users
  :data:`TAKEN`), :data:`USERBASE` through a ``userbase`` table, :data:`UNLISTED` routed to it
  and matched by no rule (no relaying), :data:`FAILING` taken for any local part (the virtual
  table's catch-all) and delivered by ``mda "/bin/false"`` (OpenSMTPD's own notice to the
  sender, :data:`MDA_CASE`), :data:`DEFERRING` the same by an mda that exits 75 (EX_TEMPFAIL)
  without words (OpenSMTPD's own delay warning after a minute, its final notice after its
  queue ttl of three);
  the rule ``match from any mail-from <refused> for any reject`` for :data:`REFUSED_CASE`'s
  sender; ``smtp max-message-size`` 20,000 bytes;
* ``rdns``: ``filter ... phase connect match !rdns disconnect "550 no rDNS is so 80s"``;
* ``fcrdns``: ``filter ... phase connect match !fcrdns disconnect "550 no FCrDNS is so 80s"``;
* ``phases``: a chain of filters keyed by the cases' senders and recipients (:data:`FILTERS`):
  ``mail-from regex`` reject at MAIL, ``rcpt-to`` reject at RCPT, rejects at the data and
  commit phases, a temporary ``reject "451 ..."`` at RCPT and a ``disconnect "421 ..."`` at
  MAIL (both at every try);
* ``src``: ``filter ... phase mail-from match src <clients> reject "..."``, the sending MTAs'
  addresses in a ``src`` table.

Mail that passes is handed to ``mda "/bin/true"``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import opensmtpd, postfix
from .cases import OPENSMTPD_RECEIVING_CASES, Case, load
from .destination import Destination
from .dnsserver import Name, Table
from .host import write_file
from .packages import extract
from .receiver import Receiver
from .rows import Row

MTA = "opensmtpd_receiving_postfix"
CASES = OPENSMTPD_RECEIVING_CASES
ROOT = Path("/tmp/r65-opensmtpd")
RUN = ROOT / "receiving"
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 18725  # 2525 + the helper's test port offset (16200): the sending Postfix
PORTS = {"main": 18728, "rdns": 18729, "fcrdns": 18730, "phases": 18731, "src": 18732}
DNS_ADDRESS = "127.65.0.53"
# The address each sending MTA's SMTP client binds to.
CLIENTS = {
    "opensmtpd_receiving_postfix": "127.65.0.2",
    "opensmtpd_receiving_exim": "127.65.0.3",
    "opensmtpd_receiving_sendmail": "127.65.0.4",
}
LOCAL = "linden-r65.test"  # the virtual table's domain
USERBASE = "alder-r65.test"  # the userbase table's domain
UNLISTED = "hazel-r65.test"  # routed to the main listener, matched by no rule
FAILING = "elder-r65.test"  # any local part taken, delivered by mda "/bin/false"
DEFERRING = "yew-r65.test"  # any local part taken, delivered by an mda that exits 75
RDNS = "rowan-r65.test"
FCRDNS = "sorb-r65.test"
PHASES = "maple-r65.test"
SRC = "aspen-r65.test"
LISTENERS = {"main": (LOCAL, USERBASE, UNLISTED, FAILING, DEFERRING), "rdns": (RDNS,),
             "fcrdns": (FCRDNS,), "phases": (PHASES,), "src": (SRC,)}  # fmt: skip
TAKEN = ("ada.ro", "ben.su", "cai.ta")  # local parts taken in LOCAL and USERBASE
MAILUSER = ("r65mail", 64992)  # the user of every local delivery
REFUSED_CASE = "opensmtpd-match-reject"
MDA_CASE = "opensmtpd-mda-fails"
MAX_MESSAGE_SIZE = 20000
# The filters of the phases listener: name, phase, the case whose sender (mail-from) or last
# recipient (rcpt-to) the condition names, and the decision.
FILTERS = (
    ("f_mail", "mail-from", "opensmtpd-filter-mail-from", "reject",
     "550 5.7.1 Sender address rejected by local policy"),
    ("f_rcpt", "rcpt-to", "opensmtpd-filter-rcpt-to", "reject",
     "550 Recipient no longer accepts mail"),
    ("f_data", "data", "opensmtpd-filter-data", "reject",
     "554 5.7.1 Message refused"),
    ("f_commit", "commit", "opensmtpd-filter-commit", "reject",
     "554 5.7.1 Message rejected as spam"),
    ("f_tempfail", "rcpt-to", "opensmtpd-filter-tempfail", "reject",
     "451 4.7.1 Please try again later"),
    ("f_drop", "mail-from", "opensmtpd-filter-disconnect", "disconnect",
     "421 4.3.2 Service not available, closing transmission channel"),
)  # fmt: skip
SRC_REJECT = "550 5.7.1 Your IP address is not allowed to send mail here"
RDNS_DISCONNECT = "550 no rDNS is so 80s"
FCRDNS_DISCONNECT = "550 no FCrDNS is so 80s"
TABLE = Table({"sender.test": Name((("A", "127.0.0.1"),))})

CONF = """\
queue ttl 3m
bounce warn-interval 1m
smtp max-message-size {size}
table vusers file:{run}/virtual
table users file:{run}/users
table refused file:{run}/refused
table clients file:{run}/clients
{tables}
filter check_rdns phase connect match !rdns disconnect "{rdns}"
filter check_fcrdns phase connect match !fcrdns disconnect "{fcrdns}"
filter check_src phase mail-from match src <clients> reject "{src}"
{filters}
filter phases chain {{ {chain} }}
listen on 127.0.0.1 port {main} hostname mx.{local}
listen on 127.0.0.1 port {rdns_port} hostname mx.{local} filter check_rdns
listen on 127.0.0.1 port {fcrdns_port} hostname mx.{local} filter check_fcrdns
listen on 127.0.0.1 port {phases_port} hostname mx.{local} filter phases
listen on 127.0.0.1 port {src_port} hostname mx.{local} filter check_src
action "deliver" mda "/bin/true" virtual <vusers>
action "userbase" mda "/bin/true" userbase <users>
action "failing" mda "/bin/false" virtual <vusers>
action "deferring" mda "{run}/tempfail" virtual <vusers>
action "capture" relay host smtp://{host}:{capture}
match from any mail-from <refused> for any reject
match from any for domain "{userbase}" action "userbase"
match from any for domain "{failing}" action "failing"
match from any for domain "{deferring}" action "deferring"
match from any for domain {{ {virtual_domains} }} action "deliver"
match from local for domain "sender.test" action "capture"
"""


def _conf(cases: list[Case], destination: Destination) -> str:
    tables, filters = [], []
    for name, phase, case_name, decision, text in FILTERS:
        case = next((c for c in cases if c.name == case_name), None)
        key = "mail-from" if phase in ("mail-from", "data", "commit") else "rcpt-to"
        if case is None:
            value = f"nobody-{name}@{PHASES}"
        else:
            value = case.sender if key == "mail-from" else case.recipients[-1]
        (RUN / name).write_text(f"{value}\n")
        tables.append(f"table {name} file:{RUN / name}")
        filters.append(f'filter {name} phase {phase} match {key} <{name}> {decision} "{text}"')
    virtual_domains = ", ".join(f'"{d}"' for d in (LOCAL, RDNS, FCRDNS, PHASES, SRC))
    return CONF.format(
        size=MAX_MESSAGE_SIZE, run=RUN, tables="\n".join(tables), rdns=RDNS_DISCONNECT,
        fcrdns=FCRDNS_DISCONNECT, src=SRC_REJECT, filters="\n".join(filters),
        chain=", ".join(name for name, *_ in FILTERS), main=PORTS["main"],
        rdns_port=PORTS["rdns"], fcrdns_port=PORTS["fcrdns"], phases_port=PORTS["phases"],
        src_port=PORTS["src"], local=LOCAL, host=destination.host,
        capture=destination.capture_port, userbase=USERBASE, failing=FAILING, deferring=DEFERRING,
        virtual_domains=virtual_domains,
    )  # fmt: skip


def _configure(cases: list[Case], destination: Destination) -> None:
    """A fresh :data:`RUN`: ``opensmtpd.write_run``'s folders and identities (with
    :data:`MAILUSER`), the tables and ``smtpd.conf``."""
    opensmtpd.write_run(RUN, {"postmaster": "root"}, "", mailuser=MAILUSER)
    user, uid = MAILUSER
    # The filters' listeners take every address of their cases: only the filter refuses.
    filtered = (RDNS, FCRDNS, PHASES, SRC)
    taken = [f"{u}@{LOCAL}" for u in TAKEN]
    taken += [a for c in cases for a in c.recipients if a.split("@")[1] in filtered]
    taken += [f"@{FAILING}", f"@{DEFERRING}"]  # any local part
    (RUN / "virtual").write_text("".join(f"{a} {user}\n" for a in dict.fromkeys(taken)))
    (RUN / "users").write_text("".join(f"{u} {uid}:{uid}:/var/{user}\n" for u in TAKEN))
    refused = [c.sender for c in cases if c.name == REFUSED_CASE] or [f"nobody@{LOCAL}"]
    (RUN / "refused").write_text("".join(f"{s}\n" for s in refused))
    (RUN / "clients").write_text("".join(f"{c}\n" for c in CLIENTS.values()))
    write_file(RUN / "tempfail", "#!/bin/sh\nexit 75\n", 0o755)  # EX_TEMPFAIL, no words
    (RUN / "smtpd.conf").write_text(_conf(cases, destination))


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the listener's port it goes to."""
    return {domain: PORTS[name] for name, domains in LISTENERS.items() for domain in domains}


@contextmanager
def receiving(cases: list[Case], destination: Destination, out: Path, mta: str) -> Iterator[str]:
    """The receiving OpenSMTPD in its namespace, with the DNS server, while open; its version.
    Its log is copied beside ``out`` on leaving."""
    version = extract(opensmtpd.PACKAGES, ROOT)["opensmtpd"]
    _configure(cases, destination)
    with opensmtpd.receiving(
        ROOT, RUN, f"mx.{LOCAL}", ports=list(PORTS.values()), table=TABLE,
        dns_address=DNS_ADDRESS, log_copy=out.parent / f"{mta}-receiving.log",
    ):  # fmt: skip
        yield f"opensmtpd-{version} (receiving)"


def check(conf: Path) -> subprocess.CompletedProcess[str]:
    """``smtpd -n``: the configuration's syntax checked (for a probe by hand)."""
    return subprocess.run([str(ROOT / "usr/sbin/smtpd"), "-n", "-f", str(conf)],
                          capture_output=True, text=True, check=False)  # fmt: skip


RECEIVER = Receiver(CASES, routes_to, "opensmtpd",
                    lambda s: receiving(s.cases, s.destination, s.out, s.mta),
                    clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, CASES)
    postfix.configure_sending(SEND, "quince-r65.test", PORT, destination, routes_to(),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(built, destination, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
