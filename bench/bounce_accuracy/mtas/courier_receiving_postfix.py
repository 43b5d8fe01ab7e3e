"""Courier's own checks as the RECEIVING server, in other MTAs' notices (round 66): Debian 12's
Courier 1.0.16 (``courier.PACKAGES``, unpacked under :data:`ROOT`, never installed), so far run
here only as a sending MTA (``courier.py``), runs as ``courier.py`` runs it (a mount and UTS
namespace of its own, ``/usr`` from the packages, ``/etc``, ``/var`` and ``/run`` each with a
writable layer under :data:`RUN`), its ``/etc`` layer holding a private ``resolv.conf`` that
names the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`). Its ``courieresmtpd``
listens on two ports of 127.0.0.1 (:data:`PORTS`, each a ``couriertcpd`` of its own, started
as its ``esmtpd`` script starts it); the sending MTA (this module: a second instance of the
system's Postfix; ``courier_receiving_exim`` and ``courier_receiving_sendmail`` the others)
sends to them from a loopback address of its own (:data:`CLIENTS`: Courier's stock
``smtpaccess`` lets 127.0.0.1 relay) and writes the notices.

What Courier refuses, defers or returns (its stock settings and words; ``courier(8)``,
``couriertcpd(1)``, ``dot-courier(5)``, ``courierperlfilter(8)``):

* ``main``: :data:`LOCAL` is local (``locals``; its users are the namespace's, through
  authdaemond's PAM module): a name that is no user is refused at RCPT; :data:`UNLISTED` is
  routed to it and neither local nor in ``esmtpacceptmailfor`` (relaying denied: the clients
  get no ``RELAYCLIENT``); ``BOFHCHECKDNS`` (on by default): the sender's domain NXDOMAIN
  (:data:`NX_SENDER`) or SERVFAIL (:data:`SERVFAIL_SENDER`, a temporary refusal); ``bofh``'s
  ``badfrom`` (one sender's address), ``badmx`` (:data:`BADMX_SENDER`'s MX is on the listed
  address), ``maxrcpts 2 hard``; ``opt BOFHSPFMAILFROM`` with the SPF results
  ``pass,none,neutral,unknown,error`` accepted and ``BOFHSPFHARDERROR=fail``:
  :data:`SPF_FAIL_SENDER` (``-all``) refused, :data:`SPF_SOFT_SENDER` (``~all``) deferred;
  ``sizelimit`` 20,000 bytes; a perlfilter of ours (:data:`FILTER`) that refuses a message
  carrying :data:`FILTER_LINE` with its own text; and after acceptance, Courier's own notices
  (to ``sender.test``, through the capture server) for a user whose ``.courier`` is
  ``|/bin/false`` (a temporary failure at every try: Courier's delay warning, then its final
  notice) and one whose ``.courier`` exits with ``EX_SOFTWARE`` (70) after printing a line;
* ``dnsbl`` (:data:`LISTED` local there too): ``couriertcpd -block=`` :data:`DNSBL_ZONE`,
  the clients' addresses listed with a TXT reason.

Courier's own queue: delay warnings after a minute, a lifetime of three (``courier.SETTINGS``).
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import courier, postfix
from .cases import COURIER_RECEIVING_CASES, Case, load
from .destination import Destination
from .dnsserver import SERVFAIL, Name, Table, resolv_conf, serving
from .host import ENV, Namespace, Overlay, stop, wait_listening
from .packages import extract
from .receiver import Receiver
from .rows import Row

MTA = "courier_receiving_postfix"
CASES = COURIER_RECEIVING_CASES
ROOT = Path("/tmp/r66-courier")
RUN = ROOT / "run"
HOMES = ROOT / "home"  # the local users' homes (seen in the namespace: /tmp is not overlaid)
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 18825  # 2525 + the helper's test port offset (16300): the sending Postfix
PORTS = {"main": 18828, "dnsbl": 18829}
DNS_ADDRESS = "127.66.0.53"
# The address each sending MTA's SMTP client binds to.
CLIENTS = {
    "courier_receiving_postfix": "127.66.0.2",
    "courier_receiving_exim": "127.66.0.3",
    "courier_receiving_sendmail": "127.66.0.4",
}
LOCAL = "alder-r66.test"  # Courier's local domain (its users)
UNLISTED = "hazel-r66.test"  # routed to the main daemon, neither local nor accepted: relaying
LISTED = "linden-r66.test"  # the dnsbl daemon's (local there, as everywhere)
NX_SENDER = "gone-r66.test"  # a sender domain with no record: NXDOMAIN
SERVFAIL_SENDER = "flaky-r66.test"  # a sender domain whose DNS answers SERVFAIL
BADMX_SENDER = "tallow-r66.test"  # a sender domain whose MX is on bofh's badmx address
SPF_FAIL_SENDER = "thorn-r66.test"  # SPF "-all"
SPF_SOFT_SENDER = "bramble-r66.test"  # SPF "~all"
SENDER_DOMAINS = (NX_SENDER, SERVFAIL_SENDER, BADMX_SENDER, SPF_FAIL_SENDER, SPF_SOFT_SENDER)
BADMX = "192.0.2.66"
DNSBL_ZONE = "dnsbl.r66.test"
BADFROM_CASE = "courier-badfrom"
# Local users: taken ones (a Maildir each), the one whose .courier always fails for now, the
# one whose .courier fails for good.
REFUSAL = "Sorry, this recipient does not accept your mail."
USERS = {"ada.ro": "", "ben.su": "", "cai.ta": "", "dag.ny": "|/bin/false\n",
         "eli.vo": f"|echo '{REFUSAL}'; exit 70\n"}  # fmt: skip
FIRST_UID = 64993
FILTER_LINE = "Unsubscribe: r66-marker-9f3a"
FILTER_TEXT = "550 Message refused by the content policy of this site."
FILTER = f"""\
use IO::File;
my $filedesc = shift @ARGV;
my $socket = new IO::File "+<&$filedesc";
die "$!" unless defined $socket;
my $first = 1;
my $answer = "200 Ok";
while (defined(my $line = <$socket>)) {{
    chomp $line;
    last unless $line;
    if ($first) {{
        my $fh = new IO::File "< $line";
        if (defined $fh) {{
            while (defined(my $text = <$fh>)) {{
                if (index($text, "{FILTER_LINE}") >= 0) {{ $answer = "{FILTER_TEXT}"; last; }}
            }}
        }}
    }}
    $first = 0;
}}
$answer .= "\\n";
print $socket $answer;
$socket->close;
"""
BOFH = f"""\
badmx {BADMX}
maxrcpts 2 hard
opt BOFHSPFMAILFROM=pass,none,neutral,unknown,error
opt BOFHSPFHARDERROR=fail
opt BOFHSUPPRESSBACKSCATTER=none
"""


def _reversed(client: str) -> tuple[str, str]:
    """The names a DNS list is asked about ``client`` by: its IPv4 address's, and the IPv6
    nybbles' of its IPv4-mapped form (``::ffff:a.b.c.d``, as Courier's server sees clients)."""
    mapped = ipaddress.IPv6Address(f"::ffff:{client}").exploded.replace(":", "")
    return ".".join(reversed(client.split("."))), ".".join(reversed(mapped))


TABLE = Table(
    {
        "sender.test": Name((("A", "127.0.0.1"),)),
        SERVFAIL_SENDER: Name(rcode=SERVFAIL),
        BADMX_SENDER: Name((("MX", f"10 mx.{BADMX_SENDER}"),)),
        f"mx.{BADMX_SENDER}": Name((("A", BADMX),)),
        SPF_FAIL_SENDER: Name((("A", "127.0.0.1"), ("TXT", "v=spf1 -all"))),
        SPF_SOFT_SENDER: Name((("A", "127.0.0.1"), ("TXT", "v=spf1 ~all"))),
        **{
            f"{name}.{DNSBL_ZONE}": Name(
                (("A", "127.0.0.2"), ("TXT", f"{client} is listed in {DNSBL_ZONE}"))
            )
            for client in CLIENTS.values()
            for name in _reversed(client)
        },
    }
)


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving daemon's port it goes to."""
    return dict.fromkeys((LOCAL, UNLISTED), PORTS["main"]) | {LISTED: PORTS["dnsbl"]}


def _badfrom(cases: list[Case]) -> str:
    return "".join(f"badfrom {c.sender}\n" for c in cases if c.name == BADFROM_CASE)


def _configure(cases: list[Case], destination: Destination) -> None:
    """Courier's settings (``courier.configure``'s, then ours) and its users' homes."""
    courier.configure(destination, ROOT, RUN, {"sender.test": destination.capture_port})
    etc = RUN / "etc/courier"
    (etc / "me").write_text(f"mx.{LOCAL}\n")
    (etc / "defaultdomain").write_text(f"{LOCAL}\n")
    (etc / "locals").write_text(f"localhost\n{LOCAL}\n{LISTED}\n")
    (etc / "aliases/system").write_text("postmaster: root\n")
    # Courier's own notices after it accepted the mail (the .courier cases): its stock
    # settings drop them for mail from clients with no relaying privileges (backscatter)
    courierd = (etc / "courierd").read_text()
    (etc / "courierd").write_text(courierd.replace("\nESMTP_BLOCKBACKSCATTER=smtp/dsn\n", "\n"))
    (etc / "esmtpacceptmailfor").write_text(f"{LOCAL}\n{LISTED}\n")
    # TARPIT=0: the stock TARPIT=1 only slows each refusal down (its replies are the same)
    esmtpd = (etc / "esmtpd").read_text()
    (etc / "esmtpd").write_text(esmtpd.replace("\nTARPIT=1\n", "\nTARPIT=0\n"))
    (etc / "bofh").write_text(BOFH + _badfrom(cases))
    (etc / "sizelimit").write_text("20000\n")
    (etc / "filters/perlfilter").write_text(f"{RUN / 'perlfilter.pl'}\n")
    (etc / "filters/perlfilter-numprocs").write_text("1\n")
    # mandatory (allfilters): a local delivery with no maildrop filter skips the optional ones
    (etc / "filters/perlfilter-mode").write_text("all\n")
    (etc / "enablefiltering").write_text("esmtp\n")
    (RUN / "perlfilter.pl").write_text(FILTER)
    for path in (etc / "bofh", etc / "sizelimit", *(etc / "filters").iterdir()):
        os.chown(path, 0, courier.COURIER_ID)
    resolv_conf(RUN / "etc/resolv.conf", DNS_ADDRESS)
    if HOMES.exists():
        shutil.rmtree(HOMES)
    users, groups = [], []
    for number, (user, dot) in enumerate(USERS.items()):
        uid = FIRST_UID + number
        home = HOMES / user
        for folder in ("Maildir/cur", "Maildir/new", "Maildir/tmp"):
            (home / folder).mkdir(parents=True)
        if dot:
            (home / ".courier").write_text(dot)
            (home / ".courier").chmod(0o644)
        for path in (home, *home.rglob("*")):
            os.chown(path, uid, uid)
        users.append(f"{user}:x:{uid}:{uid}::{home}:/bin/sh")
        groups.append(f"{user}:x:{uid}:")
    for name, lines in (("passwd", users), ("group", groups)):
        with (RUN / "etc" / name).open("a") as file:
            file.write("".join(f"{line}\n" for line in lines))
    HOMES.chmod(0o755)


def _tcpd(namespace: Namespace, name: str) -> list[str]:
    """Daemon ``name``'s ``couriertcpd`` command in the namespace, as the ``esmtpd`` script
    builds it from ``/etc/courier/esmtpd`` (its settings sourced first)."""
    # "*": the list's TXT record is the refusal's text
    block = f" '-block={DNSBL_ZONE},BLOCK,*'" if name == "dnsbl" else ""
    script = (
        "set -a; . /etc/courier/esmtpd; "
        "exec /usr/sbin/couriertcpd -stderrlogger=/usr/sbin/courierlogger -noidentlookup "
        f"-user=courier -group=courier -address=127.0.0.1{block} "
        "-access=/etc/courier/smtpaccess.dat -maxprocs=40 -maxperc=5 -maxperip=5 "
        f"-pid=/run/courier/esmtpd-{name}.pid {PORTS[name]} /usr/sbin/courieresmtpd"
    )
    return namespace.inside("/usr/bin/env", "-i", "/bin/sh", "-c", script)


@contextmanager
def receiving(cases: list[Case], destination: Destination, out: Path, mta: str) -> Iterator[str]:
    """The receiving Courier in its namespace, with the DNS server, while open; its version.
    Its log (courierlogger's, through syslog: none here; the daemons' output) is copied beside
    ``out`` on leaving."""
    version = extract(courier.PACKAGES, ROOT)["courier-mta"]
    _configure(cases, destination)
    mounts = [
        Overlay("/usr", lower=ROOT / "usr"),
        *(Overlay(f"/{name}", upper=RUN / name) for name in ("etc", "var", "run")),
    ]
    log = RUN / "daemons.log"
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        namespace = stack.enter_context(Namespace(mta, mounts, hostname=f"mx.{LOCAL}", grace=10.0))
        output = stack.enter_context(log.open("wb"))
        daemons: list[subprocess.Popen[bytes]] = []
        try:
            namespace.run("makealiases")
            # makesmtpaccess's own step (its ``makedat`` is an alternative Debian sets up)
            namespace.run("/usr/lib/courier/makedat", "-src=/etc/courier/smtpaccess",
                          "-file=/etc/courier/smtpaccess.dat",
                          "-tmp=/etc/courier/smtpaccess.tmp", "-cidr")  # fmt: skip
            namespace.run("authdaemond", "start")
            namespace.run("courier", "start")
            namespace.run("courierfilter", "start")
            namespace.run("filterctl", "start", "perlfilter")
            for name in PORTS:
                # couriertcpd leaves for the background: stopped by its pid file below
                daemons.append(
                    subprocess.Popen(_tcpd(namespace, name), env=ENV, start_new_session=True,
                                     stdin=subprocess.DEVNULL, stdout=output, stderr=output)
                )  # fmt: skip
            for port in PORTS.values():
                wait_listening(port, "courieresmtpd (receiving)")
            yield f"courier-{version} (receiving)"
        finally:
            for daemon in daemons:
                stop(daemon)
            for name in PORTS:
                namespace.run("couriertcpd", f"-pid=/run/courier/esmtpd-{name}.pid", "-stop",
                              check=False)  # fmt: skip
            namespace.run("courierfilter", "stop", check=False)
            namespace.run("courier", "stop", check=False)
            namespace.run("authdaemond", "stop", check=False)
            shutil.copy(log, out.parent / f"{mta}-receiving.log")


RECEIVER = Receiver(CASES, routes_to, "courier",
                    lambda s: receiving(s.cases, s.destination, s.out, s.mta),
                    captured=SENDER_DOMAINS, clients=CLIENTS,
                    exim_timeout=courier.TIMEOUT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, CASES)
    postfix.configure_sending(SEND, "medlar-r66.test", PORT, destination, routes_to(),
                              captured=("sender.test", *SENDER_DOMAINS),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(built, destination, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version,
                           timeout=courier.TIMEOUT)  # fmt: skip
