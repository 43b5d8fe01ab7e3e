"""ZMailer's own checks as the RECEIVING server, in other MTAs' notices (round 76): ZMailer 3.0.1,
built from its public repository's snapshot as round 46 builds it (``zmailer.build``, under
:data:`ROOT`), but against GDBM: its SMTP server wants its policy database (with none it
answers every command "400 4.7.0 Policy database problem: Configuration bug"), and round 46,
which ran only its sending side, had no DB library. Its ``smtpserver`` runs as a daemon on
127.0.0.1:``PORT`` of :data:`PORTS` with a settings file of ours (:data:`SMTPSERVER_CONF`), in a
mount and UTS namespace whose private ``/etc/resolv.conf`` names the harness's DNS server
(``dnsserver.py``, on :data:`DNS_ADDRESS`); its router runs as its subdaemon for the RCPT
checks. Accepted mail stays in its spool (no router or scheduler daemon delivers it). The
sending MTA (this module: a second instance of the system's Postfix;
``zmailer_receiving_exim`` and ``zmailer_receiving_sendmail`` the others) sends to it from a
loopback address of its own (:data:`CLIENTS`) and writes the notices.

What it refuses or defers (``smtpserver/smtpcmds.c``'s words, ``proto/db/smtp-policy.src``'s
settings; ``doc/guides/smtp-policy``): the policy database built by its
``policy-builder.sh`` from the stock boilerplate with the second of its default pairs
(``relaycustomer - relaytarget - senderokwithdns +``: only :data:`LOCAL`, in ``localnames``,
is a relay target; the sender's domain must have an MX or address), and
``smtp-policy.spam.manual`` listing one case's sender and one recipient (``_bulk_mail``):

* a domain routed to it and not local (:data:`UNLISTED`): "550 5.7.1 Hello [<client>], Policy
  rejection on the target address: <address>";
* the sender's domain NXDOMAIN: "553 5.4.3 Hello [<client>], for MAIL FROM address <sender>
  the policy analysis reports DNS error with your source domain."; SERVFAIL: "451 4.4.3 Hello
  [<client>], for your input: <sender> policy analysis reports temporary DNS error with your
  source domain." (at every try);
* the listed sender: "553 5.7.1 Hello [<client>], for your MAIL FROM address <sender> policy
  analysis reported: Your address is not liked source for email"; the listed recipient: "550
  5.7.1 Hello [<client>], Policy analysis reported: This is not accepted relay target
  rcpt=<address>";
* a local name that is neither a user of the namespace nor an alias: the router's answer;
* ``PARAM maxsize`` 20000, announced in its EHLO reply: "552 5.3.4 This message is larger,
  than our maximum acceptable incoming message size of  20000  chars." at MAIL for a bigger
  SIZE=.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix, zmailer
from .cases import OLDER_RECEIVING_CASES, Case, load
from .destination import Destination
from .dnsserver import SERVFAIL, Name, Table, resolv_conf, serving
from .host import Bind, Namespace, wait_listening
from .receiver import Receiver
from .rows import Row

MTA = "zmailer_receiving_postfix"
CASES = OLDER_RECEIVING_CASES
ROOT = Path("/tmp/r76-zmailer")
RUN = ROOT / "run"
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 19786  # the sending Postfix (19775-19799: round 76's block)
PORTS = {"main": 19785}  # ZMailer's smtpserver
DNS_ADDRESS = "127.76.0.54"
# The address each sending MTA's SMTP client binds to.
CLIENTS = {
    "zmailer_receiving_postfix": "127.76.0.12",
    "zmailer_receiving_exim": "127.76.0.13",
    "zmailer_receiving_sendmail": "127.76.0.14",
}
LOCAL = "buckthorn-r76.test"  # ZMailer's local domain
UNLISTED = "spindle-r76.test"  # routed to it, not local there: no relay target
NX_SENDER = "gone-z-r76.test"  # a sender domain with no record: NXDOMAIN
SERVFAIL_SENDER = "flaky-z-r76.test"  # a sender domain whose DNS answers SERVFAIL
SENDER_DOMAINS = (NX_SENDER, SERVFAIL_SENDER)  # captured by the sending MTAs (the notices)
# Local names taken: aliases of root (the namespace's users are the system's).
ALIASES = ("ada.ro", "ben.su", "cai.ta", "vera.nox")
LISTED_RECIPIENT = "vera.nox"  # in smtp-policy.spam.manual
SPAM_SENDER_CASE = "zmailer-spam-sender"
MAX_SIZE = 20000
SMTPSERVER_CONF = """\
PARAM  enable-router
PARAM  enable-router-maxpar 2
PARAM  no-multiline-replies
PARAM  maxsize {max_size}
PARAM  policydb gdbm {inst}/var/db/smtp-policy
*                    * ftveR
"""
# smtp-policy.src's default pair, and the second of its alternates that is put in its place
STOCK_DEFAULTS = "relaycustomer - acceptifmx - senderokwithdns -"
DEFAULTS = "relaycustomer - relaytarget - senderokwithdns +"

TABLE = Table(
    {
        # ZMailer's check of the sender's domain wants an MX whose host has an address not
        # its own loopback's (the notices go to the capture server by the sending MTAs' routes)
        "sender.test": Name((("MX", "10 mx.sender.test"),)),
        "mx.sender.test": Name((("A", "192.0.2.25"),)),
        SERVFAIL_SENDER: Name(rcode=SERVFAIL),
    }
)


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving daemon's port it goes to."""
    return dict.fromkeys((LOCAL, UNLISTED), PORTS["main"])


def _configure(inst: Path, cases: list[Case], namespace: Namespace) -> Path:
    """ZMailer's settings, databases and policy database for a run (its spool emptied); the
    smtpserver's settings file. The databases are built inside ``namespace``."""
    zmailer.empty_spool(inst)
    var = inst / "var"
    (var / "mail.conf").write_text(f"orgdomain={LOCAL}\nhostname=mx.{LOCAL}\nmydomain={LOCAL}\n")
    db = var / "db"
    (db / "localnames").write_text(f"{LOCAL}\nmx.{LOCAL}\n")
    (db / "aliases").write_text("postmaster: root\n" + "".join(f"{a}: root\n" for a in ALIASES))
    source = db / "smtp-policy.src"
    stock = source.with_suffix(".src.stock")
    if not stock.exists():
        shutil.copy(source, stock)
    text = stock.read_text()
    if text.count(STOCK_DEFAULTS) != 2:
        raise RuntimeError(f"{stock}: not the stock default pair")
    source.write_text(text.replace(STOCK_DEFAULTS, DEFAULTS))
    listed = [c.sender for c in cases if c.name == SPAM_SENDER_CASE]
    (db / "smtp-policy.spam.manual").write_text(
        "".join(f"{a}\n" for a in [*listed, f"{LISTED_RECIPIENT}@{LOCAL}"])
    )
    namespace.run(str(inst / "bin/zmailer"), "newdb")
    namespace.run(str(inst / "bin/policy-builder.sh"))
    conf = RUN / "smtpserver.conf"
    conf.write_text(SMTPSERVER_CONF.format(max_size=MAX_SIZE, inst=inst))
    return conf


@contextmanager
def receiving(cases: list[Case], out: Path, mta: str) -> Iterator[str]:
    """The receiving ZMailer smtpserver in its namespace, with the DNS server, while open; its
    version. Its log is copied beside ``out`` on leaving."""
    inst = zmailer.build(ROOT, gdbm=True)
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    log = inst / "log/smtpserver"
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        space = stack.enter_context(
            Namespace("ZMailer (receiving)", [Bind(resolv, "/etc/resolv.conf")],
                      f"mx.{LOCAL}", grace=5.0)
        )  # fmt: skip
        try:
            conf = _configure(inst, cases, space)
            # the smtpserver leaves for the background; what is left of it in the namespace
            # on leaving is stopped with the namespace
            space.run(str(inst / "bin/smtpserver"), "-C", str(conf), "-p", str(PORTS["main"]),
                      "-l", str(log), "-I", str(RUN / "smtpserver.pid"))  # fmt: skip
            wait_listening(PORTS["main"], "ZMailer smtpserver (receiving)")
            yield f"ZMailer {zmailer.VERSION} (receiving)"
        finally:
            if log.exists():
                shutil.copy(log, out.parent / f"{mta}-receiving.log")


RECEIVER = Receiver(CASES, routes_to, "zmailer", lambda s: receiving(s.cases, s.out, s.mta),
                    captured=SENDER_DOMAINS, clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, CASES)
    postfix.configure_sending(SEND, "medlar-z-r76.test", PORT, destination, routes_to(),
                              captured=("sender.test", *SENDER_DOMAINS),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(built, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
