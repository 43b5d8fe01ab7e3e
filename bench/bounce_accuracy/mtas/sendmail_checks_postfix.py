"""Sendmail's own checks as the RECEIVING server, in other MTAs' notices (round 63): round 21b's
unpacked Sendmail 8.17 (``sendmail.unpacked``, Debian's package, never installed) runs its
daemons on 127.0.0.1 (:data:`PORTS`: four, and three of the round's second part), each from a
``.cf`` built by m4 from a ``.mc`` of ours (:data:`MC`, with the stock features named below), in
one mount and UTS namespace whose private ``/etc/resolv.conf`` names the harness's DNS server
(``dnsserver.py``, on :data:`DNS_ADDRESS`). The sending MTA (this module: a second instance of
the system's Postfix; ``sendmail_checks_exim`` and ``sendmail_checks_sendmail`` the others)
sends to them from a loopback address of its own (:data:`CLIENTS`: not 127.0.0.1, which
Sendmail's ``check_rcpt`` lets relay) and writes the notices.

What each daemon refuses or defers, from ``cf/m4/proto.m4`` and ``cf/feature/*.m4``:

* ``main`` (:data:`LOCAL` and :data:`VIRTUAL` local, :data:`UNLISTED` routed to it and not):
  an address that is neither a user nor an alias ("550 5.1.1 <address>... User unknown", at
  RCPT); ``FEATURE(access_db)``: the access-reject case's sender ``From:... REJECT`` ("550
  5.7.1 <sender>... Access denied", at MAIL), the access-error case's sender ``From:...
  ERROR:5.7.1:550 We don't accept mail from spammers`` (cf/README's own example text), with
  ``FEATURE(blocklist_recipients)`` a recipient ``To:... REJECT`` ("550 5.2.1 <address>...
  Mailbox disabled for this recipient", at RCPT); ``FEATURE(virtusertable)``: ``error:nouser
  550 No such user here`` ("550 5.0.0 <address>... No such user here") and
  ``error:5.7.0:550 Address invalid`` (cf/README's examples); relaying denied (the clients'
  addresses have no PTR record: "550 5.7.1 <address>... Relaying denied. IP name lookup
  failed [<client>]"); the sender's domain checked through DNS (no
  ``accept_unresolvable_domains``): NXDOMAIN "553 5.1.8 <sender>... Domain of sender address
  ... does not exist", SERVFAIL "451 4.1.8 Domain of sender address ... does not resolve" (at
  every try); ``MaxMessageSize`` 20,000 ("552 5.2.3 Message size exceeds fixed maximum
  message size (20000)", at MAIL from the SIZE parameter);
* ``dnsbl`` (:data:`LISTED`): ``FEATURE(dnsbl, DNSBL_ZONE)``, the sending clients' addresses
  listed ("550 5.7.1 Rejected: <address> listed at <zone>");
* ``full`` (:data:`FULL`): ``MinFreeBlocks`` larger than any disk ("452 4.4.5 Insufficient
  disk space; try again later" at MAIL, at every try);
* ``rate`` (:data:`RATE`): ``FEATURE(ratecontrol)`` with ``ClientRate:127.63.0 1`` over a
  window of ten minutes; the harness connects once from the sending MTA's address before the
  cases are sent, so each of that MTA's connections is over the limit ("452 4.3.2 Connection
  rate limit exceeded.", at every try).

Round 63's second part: the main daemon's access map also has three more of cf/README's
examples (a recipient's ``ERROR:4.2.2:450 mailbox full``, a sender's and a recipient's local
part with ``ERROR:550 ...``), and three daemons more:

* ``rdns`` (:data:`RDNS`): ``FEATURE(require_rdns)``, the clients' addresses with no PTR record
  ("550 5.7.1 Fix reverse DNS for <address>");
* ``conn`` (:data:`CONN`): ``FEATURE(conncontrol)`` with ``ClientConn:127.63.0 1``; the
  harness holds one connection open from the sending MTA's address while the cases are sent
  ("452 4.3.2 Too many open connections.", at every try);
* ``headers`` (:data:`HEADERS`): ``MaxHeadersLength`` 256 ("552 5.6.0 Headers too large (256
  max)" after DATA).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix, sendmail
from .cases import SENDMAIL_CHECKS_CASES, Case, load
from .destination import Destination
from .dnsserver import SERVFAIL, Name, Table, resolv_conf, serving
from .host import Bind, Namespace, stop, wait_listening
from .receiver import Receiver
from .rows import Row

MTA = "sendmail_checks_postfix"
CASES = SENDMAIL_CHECKS_CASES
ROOT = Path("/tmp/mta-r63-sendmail")
RUN = ROOT / "receiving"
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 18925  # 2525 + the helper's test port offset (16400): the sending Postfix
PORTS = {"main": 18928, "dnsbl": 18929, "full": 18930, "rate": 18931, "rdns": 18932,
         "conn": 18933, "headers": 18934}  # fmt: skip
DNS_ADDRESS = "127.63.0.53"
# The address each sending MTA's SMTP client binds to.
CLIENTS = {
    "sendmail_checks_postfix": "127.63.0.2",
    "sendmail_checks_exim": "127.63.0.3",
    "sendmail_checks_sendmail": "127.63.0.4",
}
LOCAL = "plum-r63.test"  # users (aliases), unknown users, access To:
VIRTUAL = "damson-r63.test"  # the virtusertable's
UNLISTED = "sloe-r63.test"  # routed to the main daemon, not local there: relaying denied
LISTED = "bullace-r63.test"  # the dnsbl daemon's
FULL = "greengage-r63.test"  # the daemon whose MinFreeBlocks no disk has
RATE = "mirabelle-r63.test"  # the ratecontrol daemon's
RDNS = "medlar-r63.test"  # the require_rdns daemon's
CONN = "quince-r63.test"  # the conncontrol daemon's
HEADERS = "rowan-r63.test"  # the daemon whose MaxHeadersLength no message's headers fit
NX_SENDER = "gone-r63.test"  # a sender domain with no record: NXDOMAIN
SERVFAIL_SENDER = "flaky-r63.test"  # a sender domain whose DNS answers SERVFAIL
SENDER_DOMAINS = (NX_SENDER, SERVFAIL_SENDER)  # captured by the sending MTAs (the notices)
DNSBL_ZONE = "dnsbl.r63.test"
DOMAINS = {"main": (LOCAL, VIRTUAL), "dnsbl": (LISTED,), "full": (FULL,), "rate": (RATE,),
           "rdns": (RDNS,), "conn": (CONN,), "headers": (HEADERS,)}  # fmt: skip
# Local parts taken (aliased to /dev/null) in every daemon's local domains.
TAKEN = ("ada.ro", "ben.su", "cai.ta")
ACCESS_REJECT_CASE = "sendmail-access-reject"
ACCESS_ERROR_CASE = "sendmail-access-error"
ACCESS_RCPT_CASE = "sendmail-access-recipient"
ACCESS_ERROR = "ERROR:5.7.1:550 We don't accept mail from spammers"
# cf/README's other examples of the access map's entries (round 63's second part): a
# temporary one for a recipient, a sender's and a recipient's local part.
ACCESS_TEMPORARY_CASE = "sendmail-access-mailbox-full"
ACCESS_SENDER_USER_CASE = "sendmail-access-sender-user"
ACCESS_RECIPIENT_USER_CASE = "sendmail-access-recipient-user"
VIRTUSERS = {"vera.nox": "error:nouser 550 No such user here",
             "jax.old": "error:5.7.0:550 Address invalid"}  # fmt: skip

MC = """\
divert(-1)
divert(0)dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `mx.{local}')dnl
define(`QUEUE_DIR', `{run}/mqueue')dnl
define(`ALIAS_FILE', `{run}/aliases')dnl
define(`STATUS_FILE', `{run}/statistics')dnl
define(`confPID_FILE', `{run}/sendmail.pid')dnl
define(`confCW_FILE', `{run}/local-host-names')dnl
define(`confSERVICE_SWITCH_FILE', `{run}/service.switch')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confRUN_AS_USER', `root')dnl
define(`confDEF_USER_ID', `65534:65534')dnl
define(`confTO_IDENT', `0')dnl
define(`confMAX_MESSAGE_SIZE', `20000')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`use_cw_file')dnl
FEATURE(`access_db', `hash -o {run}/access')dnl
FEATURE(`blocklist_recipients')dnl
FEATURE(`virtusertable', `hash -o {run}/virtusertable')dnl
{settings}DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""
SETTINGS = {
    "main": "",
    "dnsbl": f"FEATURE(`dnsbl', `{DNSBL_ZONE}')dnl\n",
    "full": "define(`confMIN_FREE_BLOCKS', `4000000000')dnl\n",
    "rate": "define(`confCONNECTION_RATE_WINDOW_SIZE', `10m')dnl\nFEATURE(`ratecontrol')dnl\n",
    "rdns": "FEATURE(`require_rdns')dnl\n",
    "conn": "FEATURE(`conncontrol')dnl\n",
    "headers": "define(`confMAX_HEADERS_LENGTH', `256')dnl\n",
}
# The access map of each daemon that has one of its own (the main one's: ``_access``).
ACCESS = {"rate": "ClientRate:127.63.0\t1\n", "conn": "ClientConn:127.63.0\t1\n"}
TABLE = Table(
    {
        "sender.test": Name((("A", "127.0.0.1"),)),
        SERVFAIL_SENDER: Name(rcode=SERVFAIL),
        **{
            f"{'.'.join(reversed(client.split('.')))}.{DNSBL_ZONE}": Name(
                (("A", "127.0.0.2"), ("TXT", f"{client} is listed in {DNSBL_ZONE}"))
            )
            for client in CLIENTS.values()
        },
    }
)


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving daemon's port it goes to."""
    routes = dict.fromkeys((LOCAL, VIRTUAL, UNLISTED), PORTS["main"])
    others = {LISTED: "dnsbl", FULL: "full", RATE: "rate", RDNS: "rdns", CONN: "conn",
              HEADERS: "headers"}  # fmt: skip
    return routes | {domain: PORTS[name] for domain, name in others.items()}


def _access(cases: list[Case]) -> str:
    lines = [f"From:{c.sender}\tREJECT" for c in cases if c.name == ACCESS_REJECT_CASE]
    lines += [f"From:{c.sender}\t{ACCESS_ERROR}" for c in cases if c.name == ACCESS_ERROR_CASE]
    lines += [f"To:{c.recipients[-1]}\tREJECT" for c in cases if c.name == ACCESS_RCPT_CASE]
    for case in cases:
        sender_user = case.sender.split("@")[0]
        user = case.recipients[-1].split("@")[0]
        if case.name == ACCESS_TEMPORARY_CASE:
            lines.append(f"To:{case.recipients[-1]}\tERROR:4.2.2:450 mailbox full")
        elif case.name == ACCESS_SENDER_USER_CASE:
            lines.append(f"From:{sender_user}@\tERROR:550 Spam not accepted")
        elif case.name == ACCESS_RECIPIENT_USER_CASE:
            lines.append(f"To:{user}@\tERROR:550 Mailbox disabled for {user}")
    return "".join(f"{line}\n" for line in lines)


def _configure(name: str, cases: list[Case], namespace: Namespace) -> Path:
    """Daemon ``name``'s fresh folder under :data:`RUN`: its queue, tables and ``sendmail.cf``;
    the ``.cf``'s path. The maps are built inside ``namespace`` (its host name)."""
    run = RUN / name
    queue = run / "mqueue"
    queue.mkdir(parents=True)
    queue.chmod(0o700)
    domains = DOMAINS[name]
    (run / "local-host-names").write_text("".join(f"{d}\n" for d in domains))
    (run / "service.switch").write_text("hosts\tdns\naliases\tfiles\n")
    (run / "aliases").write_text("".join(f"{u}: /dev/null\n" for u in TAKEN) + "postmaster: root\n")
    (run / "access").write_text(_access(cases) if name == "main" else ACCESS.get(name, ""))
    virtual = "".join(f"{user}@{VIRTUAL}\t{to}\n" for user, to in VIRTUSERS.items())
    (run / "virtusertable").write_text(virtual if name == "main" else "")
    mc = MC.format(local=domains[0], run=run, port=PORTS[name], settings=SETTINGS[name])
    (run / "sendmail.mc").write_text(mc)
    cf_dir = sendmail.CF_DIR
    m4 = subprocess.run(
        [str(sendmail.ROOT / "usr/bin/m4"), f"-D_CF_DIR_={cf_dir}/", str(cf_dir / "m4/cf.m4"),
         str(run / "sendmail.mc")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    cf = run / "sendmail.cf"
    cf.write_text(m4.stdout)
    for table in ("access", "virtusertable"):
        makemap = f"{sendmail.BIN / 'makemap'} -C {cf} hash {run / table} < {run / table}"
        namespace.run("sh", "-c", makemap)
    namespace.run(str(sendmail.BIN / "sendmail"), "-C", str(cf), "-bi")
    return cf


def _spend_rate(client: str) -> None:
    """One connection to the rate daemon from ``client`` (greeting read, then QUIT), so the
    sending MTA's own connections from it are over ``ClientRate``'s limit of 1."""
    with socket.create_connection(("127.0.0.1", PORTS["rate"]), timeout=30,
                                  source_address=(client, 0)) as connection:  # fmt: skip
        connection.recv(1024)
        connection.sendall(b"QUIT\r\n")
        connection.recv(1024)


def _hold_connection(client: str) -> socket.socket:
    """A connection to the conncontrol daemon from ``client``, greeted and left open, so each
    connection the sending MTA opens from it is over ``ClientConn``'s limit of 1."""
    connection = socket.create_connection(("127.0.0.1", PORTS["conn"]), timeout=30,
                                          source_address=(client, 0))  # fmt: skip
    connection.recv(1024)
    return connection


@contextmanager
def receiving(cases: list[Case], out: Path, mta: str) -> Iterator[str]:
    """The receiving Sendmail daemons in their namespace, with the DNS server, while
    open; the version of sendmail-bin. Their output is copied beside ``out`` on leaving."""
    version = sendmail.unpacked()
    if RUN.exists():
        shutil.rmtree(RUN)
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    log = RUN / "daemons.log"
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        namespace = stack.enter_context(
            Namespace(mta, [Bind(resolv, "/etc/resolv.conf")], hostname=f"mx.{LOCAL}", grace=5.0)
        )
        output = stack.enter_context(log.open("wb"))
        daemons = []
        for name in PORTS:
            cf = _configure(name, cases, namespace)
            command = namespace.inside(str(sendmail.BIN / "sendmail"), "-C", str(cf), "-bD")
            daemons.append(
                subprocess.Popen(command, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                 start_new_session=True, stdin=subprocess.DEVNULL,
                                 stdout=output, stderr=output)
            )  # fmt: skip
        try:
            for port in PORTS.values():
                wait_listening(port, "sendmail (receiving)")
            _spend_rate(CLIENTS[mta])
            stack.enter_context(_hold_connection(CLIENTS[mta]))
            yield f"sendmail-{version} (receiving)"
        finally:
            for daemon in daemons:
                stop(daemon)
            shutil.copy(log, out.parent / f"{mta}-receiving.log")


RECEIVER = Receiver(CASES, routes_to, "sendmail", lambda s: receiving(s.cases, s.out, s.mta),
                    captured=SENDER_DOMAINS, clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, CASES)
    postfix.configure_sending(SEND, "quetsche-r63.test", PORT, destination, routes_to(),
                              captured=("sender.test", *SENDER_DOMAINS),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(built, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
