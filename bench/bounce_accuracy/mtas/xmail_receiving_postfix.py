"""XMail's own checks as the RECEIVING server, in other MTAs' notices (round 76): XMail 1.27,
built from its public repository's snapshot as round 43 builds it (``xmail.build``, under
:data:`ROOT`; so far run here only as a sending MTA), runs as four daemons on 127.0.0.1, each
with a MailRoot of its own (:data:`SETTINGS`), in a mount namespace whose private
``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`;
XMail's own resolver is told it too, ``SmartDNSHost``). The sending MTA (this module: a second
instance of the system's Postfix; ``xmail_receiving_exim`` and ``xmail_receiving_sendmail``
the others) sends to them from a loopback address of its own (:data:`CLIENTS`) and writes the
notices.

What each daemon refuses or defers (``SMTPSvr.cpp``'s words; its ``docs/Readme.txt``):

* ``main`` (:data:`LOCAL` local; :data:`UNLISTED` routed to it and not: no client may relay,
  ``DefaultSmtpPerms`` without ``R``): a name that is no account, "550 Mailbox unavailable
  <address>"; an account with ``ReceiveEnable`` 0, "550 Account disabled <address>"; one whose
  mailbox is over its ``MaxMBSize``, "552 Requested mail action aborted: exceeded storage
  allocation - <address>"; a mailing list with ``ClosedML`` 1 and no subscriber, "557 Access
  denied <list> for user <sender>"; relaying, "550 Relay denied" (all at RCPT);
  ``CheckMailerDomain``: a sender's domain with no MX and no address, "505 Your domain has no
  DNS/MX entries"; ``spam-address.tab`` (one case's sender), "504 You are registered as
  spammer" (at MAIL); ``MaxMessageSize`` 20 (KB), announced in its EHLO reply (SIZE); a
  post-RCPT filter of ours that refuses one recipient without words of its own, XMail's "550
  Recipient rejected"; a post-DATA filter that refuses a message with a marker line without
  words of its own, XMail's "554 Transaction failed". Its second listener, :data:`PORTS`'s
  ``auth`` (``SmtpConfig-127.0.0.1,<port>`` ``mail-auth``): "551 Server use forbidden" at MAIL
  to a client that did not authenticate;
* ``spammers``: ``spammers.tab`` lists the clients (immediate rejection, the stock code), no
  ``SmtpMsgIPBanSpammers`` text set: "421 XMail service not available (<error>), closing
  transmission channel" as the greeting, at every try;
* ``dnsbl``: ``CustMapsList`` :data:`DNSBL_ZONE` with code 1, the clients listed: "550 Denied
  due inclusion of your IP inside (<zone>)" as the greeting;
* ``rdns``: ``SMTP-RDNSCheck`` 1, the clients' addresses with no PTR record: "551 Server access
  forbidden by your IP" at MAIL.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix, xmail
from .cases import OLDER_RECEIVING_CASES, Case, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import ENV, Bind, isolated, stop, wait_listening
from .receiver import Receiver
from .rows import Row

MTA = "xmail_receiving_postfix"
CASES = OLDER_RECEIVING_CASES
ROOT = Path("/tmp/r76-xmail")
RUN = ROOT / "run"
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 19775  # the sending Postfix (19775-19799: round 76's block, no other module's)
# Each daemon's SMTP port; ``auth`` is the main daemon's second listener.
PORTS = {"main": 19778, "auth": 19779, "spammers": 19780, "dnsbl": 19781, "rdns": 19782}
DNS_ADDRESS = "127.76.0.53"
# The address each sending MTA's SMTP client binds to.
CLIENTS = {
    "xmail_receiving_postfix": "127.76.0.2",
    "xmail_receiving_exim": "127.76.0.3",
    "xmail_receiving_sendmail": "127.76.0.4",
}
LOCAL = "birch-r76.test"  # the main daemon's local domain (its accounts)
UNLISTED = "hornbeam-r76.test"  # routed to the main daemon, not local there: relaying
AUTH = "rowan-r76.test"  # routed to the main daemon's listener that wants authentication
SPAMMERS = "yew-r76.test"  # the spammers daemon's local domain
LISTED = "alder-r76.test"  # the dnsbl daemon's
RDNS = "holly-r76.test"  # the rdns daemon's
NX_SENDER = "gone-r76.test"  # a sender domain with no record: NXDOMAIN
SENDER_DOMAINS = (NX_SENDER,)  # captured by the sending MTAs (the notices)
DNSBL_ZONE = "dnsbl.r76.test"
DOMAINS = {"main": LOCAL, "spammers": SPAMMERS, "dnsbl": LISTED, "rdns": RDNS}
SPAM_ADDRESS_CASE = "xmail-spam-address"
# Accounts of every daemon's domain: taken ones, one disabled, one over its quota (a 2 KB
# message in a mailbox of 1 KB at most), one the post-RCPT filter refuses; and a closed list.
USERS = {"ada.ro": {}, "ben.su": {}, "cai.ta": {}, "dag.ny": {"ReceiveEnable": "0"},
         "eli.vo": {"MaxMBSize": "1"}, "ivo.ra": {}}  # fmt: skip
FULL_USER = "eli.vo"
FILTERED_USER = "ivo.ra"
CLOSED_LIST = "news-list"
FILTER_LINE = "Unsubscribe: r76-marker-4c1e"
# XMail's filters: exit code 3 refuses; without a "<file>.rej" the words are XMail's own.
RCPT_FILTER = f'#!/bin/sh\ncase "$1" in *{FILTERED_USER}@*) exit 3;; esac\nexit 0\n'
DATA_FILTER = f'#!/bin/sh\ngrep -q "{FILTER_LINE}" "$1" && exit 3\nexit 0\n'
SERVER_TAB = {
    "RootDomain": LOCAL,
    "SmtpServerDomain": f"mx.{LOCAL}",
    "POP3Domain": LOCAL,
    "HeloDomain": f"mx.{LOCAL}",
    "PostMaster": f"root@{LOCAL}",
    "ErrorsAdmin": "",
    "TempErrorsAdmin": "",
    "RemoveSpoolErrors": "1",
    "MaxMTAOps": "16",
    "ReceivedHdrType": "0",
    "FetchHdrTags": "+X-Deliver-To,+Received,To,Cc",
    "DefaultSmtpPerms": "MVZ",  # no R: no client relays
    "SmartDNSHost": f"{DNS_ADDRESS}:udp",
    # STARTTLS is on by default and no certificate is set up: a sending Sendmail took it up,
    # the handshake failed and it deferred every case (round 76's first run)
    "EnableSMTP-TLS": "0",
}
SETTINGS = {
    "main": {
        "CheckMailerDomain": "1",
        "MaxMessageSize": "20",
        f"SmtpConfig-127.0.0.1,{PORTS['auth']}": "mail-auth",
    },
    "spammers": {},
    "dnsbl": {"CustMapsList": f"{DNSBL_ZONE}.:1"},
    "rdns": {"SMTP-RDNSCheck": "1"},
}

TABLE = Table(
    {
        "sender.test": Name((("A", "127.0.0.1"),)),
        **{
            f"{'.'.join(reversed(client.split('.')))}.{DNSBL_ZONE}": Name((("A", "127.0.0.2"),))
            for client in CLIENTS.values()
        },
    }
)


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving daemon's port it goes to."""
    main = dict.fromkeys((LOCAL, UNLISTED), PORTS["main"]) | {AUTH: PORTS["auth"]}
    return main | {SPAMMERS: PORTS["spammers"], LISTED: PORTS["dnsbl"], RDNS: PORTS["rdns"]}


def _configure(name: str, source: Path, cases: list[Case]) -> Path:
    """Daemon ``name``'s MailRoot under :data:`RUN` (fresh); its path."""
    root = RUN / name / "MailRoot"
    xmail.lay_mail_root(source, root)
    domain = DOMAINS[name]
    (root / "server.tab").write_text(xmail.tab(*(SERVER_TAB | SETTINGS[name]).items()))
    (root / "domains.tab").write_text(xmail.tab((domain,)))
    for table in ("smtpfwd.tab", "smtpgw.tab", "smtprelay.tab", "spam-address.tab",
                  "spammers.tab", "smtp.ipmap.tab", "smtp.ipprop.tab"):  # fmt: skip
        (root / table).write_text("")
    (root / "aliases.tab").write_text(xmail.tab((domain, "postmaster", "root")))
    accounts = [("root", {}, "U"), *((u, v, "U") for u, v in USERS.items()),
                (CLOSED_LIST, {"ClosedML": "1"}, "M")]  # fmt: skip
    (root / "mailusers.tab").write_text(
        xmail.tab(*((domain, user, "1d08040c09", str(uid), user, kind)
                    for uid, (user, _, kind) in enumerate(accounts, start=1)))
    )  # fmt: skip
    for user, variables, kind in accounts:
        home = root / "domains" / domain / user
        if kind == "U":
            for folder in ("tmp", "new", "cur"):
                (home / "Maildir" / folder).mkdir(parents=True)
        else:
            home.mkdir(parents=True)
            (home / "mlusers.tab").write_text("")
        (home / "user.tab").write_text(xmail.tab(("RealName", user), *variables.items()))
    # XMail refuses at RCPT when the mailbox is already at its quota: the full one holds an
    # older message over it.
    older = root / "domains" / domain / FULL_USER / "Maildir/cur/1.older:2,S"
    older.write_text("Subject: older\n\n" + "x" * 2048 + "\n")
    if name == "main":
        (root / "spam-address.tab").write_text(
            "".join(xmail.tab((c.sender,)) for c in cases if c.name == SPAM_ADDRESS_CASE)
        )
        for kind, script, argument in (("post-rcpt", RCPT_FILTER, "$(CRCPT)"),
                                       ("post-data", DATA_FILTER, "$(FILE)")):  # fmt: skip
            program = RUN / name / f"{kind}.sh"
            program.write_text(script)
            program.chmod(0o755)
            (root / f"filters.{kind}.tab").write_text(xmail.tab((str(program), argument)))
    if name == "spammers":
        (root / "spammers.tab").write_text(xmail.tab(("127.76.0.0/24",)))
    return root


def _addresses(name: str) -> list[str]:
    ports = [PORTS[name]] + ([PORTS["auth"]] if name == "main" else [])
    return [f"127.0.0.1:{port}" for port in ports]


@contextmanager
def receiving(cases: list[Case], out: Path, mta: str) -> Iterator[str]:
    """The receiving XMail daemons in their namespaces, with the DNS server, while open; the
    version. Their logs are copied beside ``out`` on leaving."""
    source = xmail.build(ROOT)
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        daemons: list[subprocess.Popen[bytes]] = []
        try:
            for name in DOMAINS:
                root = _configure(name, source, cases)
                env = {**ENV, "MAIL_ROOT": str(root), "XMAIL_PID_DIR": str(root.parent)}
                command = isolated(xmail.command(source, root, _addresses(name)),
                                   [Bind(resolv, "/etc/resolv.conf")])  # fmt: skip
                output = stack.enter_context((RUN / name / "xmail.log").open("wb"))
                daemons.append(
                    subprocess.Popen(command, env=env, start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=output, stderr=output)
                )  # fmt: skip
            for port in PORTS.values():
                wait_listening(port, "XMail (receiving)")
            yield f"XMail {xmail.VERSION} (receiving)"
        finally:
            for daemon in daemons:
                stop(daemon)
            for name in DOMAINS:
                logs = RUN / name / "MailRoot/logs"
                for log in [RUN / name / "xmail.log", *sorted(logs.glob("*"))]:
                    shutil.copy(log, out.parent / f"{mta}-receiving-{name}-{log.name}")


RECEIVER = Receiver(CASES, routes_to, "xmail", lambda s: receiving(s.cases, s.out, s.mta),
                    captured=SENDER_DOMAINS, clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, CASES)
    postfix.configure_sending(SEND, "medlar-r76.test", PORT, destination, routes_to(),
                              captured=("sender.test", *SENDER_DOMAINS),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(built, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
