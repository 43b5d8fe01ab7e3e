"""Haraka's own plugins as the RECEIVING server, in other MTAs' notices (round 64): npm's Haraka
3.3.4 (round 33's version; until now it ran here only as a sending MTA) installed with ``npm
install`` under :data:`PKG` (never into the repository, never globally), run as five instances
(:data:`PORTS`), each with a folder of its own (``haraka -c <folder>``: the package's stock
configuration copied, then the instance's files) and the plugins named below with their stock
messages, in one mount namespace whose private ``/etc/resolv.conf`` names the harness's DNS
server (``dnsserver.py``, on :data:`DNS_ADDRESS`; Node's resolver reads that file). Greylisting
and the limits keep their counters in a private ``redis-server`` the module starts on
:data:`REDIS_PORT` (never the shared Redis). The sending MTA (this module: a second instance of
the system's Postfix; ``haraka_receiving_exim`` and ``haraka_receiving_sendmail`` the others)
sends to them from a loopback address of its own (:data:`CLIENTS`) and writes the notices.

What each instance refuses or defers (the plugins' own words):

* ``main`` (:data:`LOCAL` in ``host_list``, :data:`UNLISTED` routed to it and not listed):
  ``rcpt_to.in_host_list`` leaves an unlisted domain to Haraka's core ("550 I cannot deliver
  mail for <address>", relaying refused); ``access``: a sender in
  ``mail_from.access.blacklist`` ("550 <sender> That sender cannot send mail here") and a
  recipient in ``rcpt_to.access.blacklist`` ("550 <address> That recipient is not allowed");
  ``mail_from.is_resolvable``: the sender's domain NXDOMAIN, SERVFAIL (at every try) or a null
  MX (RFC 7505); ``headers`` with ``[reject] duplicate_singular`` ("Only one Subject header
  allowed. See RFC 5322, Section 3.6" after DATA); the core's ``[max] bytes`` 20,000 ("550
  Message too big!" at MAIL, from SIZE=) and ``[headers] max_received`` 10 ("550 Too many
  received headers - possible mail loop"); ``queue/smtp_forward`` to a next hop where nothing
  listens (the message taken to the queue fails for now, at every try);
* ``dnsbl`` (:data:`LISTED`): ``dns-list`` with the zone :data:`DNSBL_ZONE`, the clients'
  addresses listed ("host [<client>] is listed on <zone>"). ``dns-list`` skips private
  addresses and loopback is one, so the instance's first plugin (``bench_public``, the
  harness's) marks the connection's address not private, as a public client's would be;
* ``concurrency`` (:data:`CONCURRENT`): ``limit`` with ``[concurrency] max=1``; the harness
  holds one connection open from the sending MTA's address ("Too many concurrent
  connections", at every try);
* ``rate`` (:data:`RATED`): ``limit``'s ``[rate_conn]`` for the clients' /24 at 1 per ten
  minutes; the harness connects once from the sending MTA's address first ("connection rate
  limit exceeded", at every try);
* ``greylist`` (:data:`GREY`): ``greylist`` with its stock black period (850 s, longer than
  the senders' queue lifetimes: "451 4.7.1 Greylisted. Please come back later." at every try);
  ``greylist`` skips private addresses too, so ``bench_public`` comes first here as well.

Haraka listens before ``limit`` has its Redis connection: the module waits :data:`READY` seconds
before its own connections (the rate limit's first one, the one it holds open).

Not made: ``helo.checks`` (its ``match_re`` refuses the sending MTAs' EHLO, "550 That HELO not
allowed here", but each check runs once per connection, so the HELO that Postfix sends next is
let through and the mail taken: no notice).
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import haraka, postfix
from .cases import HARAKA_RECEIVING_CASES, Case, load
from .destination import Destination
from .dnsserver import SERVFAIL, Name, Table, resolv_conf, serving
from .host import Bind, Namespace, stop, wait_listening
from .receiver import Receiver
from .rows import Row

MTA = "haraka_receiving_postfix"
CASES = HARAKA_RECEIVING_CASES
ROOT = Path("/tmp/r64-haraka")
PKG = ROOT / "pkg"
HARAKA = PKG / "node_modules/Haraka/bin/haraka"
RUN = ROOT / "receiving"
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 18625  # 2525 + the helper's test port offset (16100): the sending Postfix
PORTS = {"main": 18628, "dnsbl": 18629, "concurrency": 18631, "rate": 18632, "greylist": 18633}
DEAD_PORT = 18639  # smtp_forward's next hop: nothing listens there
REDIS_ADDRESS = "127.64.0.1"
REDIS_PORT = 18640
DNS_ADDRESS = "127.64.0.53"
READY = 5.0  # seconds from listening to the plugins' Redis connections made
# The address each sending MTA's SMTP client binds to.
CLIENTS = {
    "haraka_receiving_postfix": "127.64.0.2",
    "haraka_receiving_exim": "127.64.0.3",
    "haraka_receiving_sendmail": "127.64.0.4",
}
# The sending MTAs' own domains (their HELO names are mx.<domain>).
SENDERS = {
    "haraka_receiving_postfix": "pruneau-r64.test",
    "haraka_receiving_exim": "pruneau-x-r64.test",
    "haraka_receiving_sendmail": "pruneau-m-r64.test",
}
LOCAL = "cornel-r64.test"  # the main instance's host_list
UNLISTED = "hazel-r64.test"  # routed to the main instance, not in its host_list
LISTED = "rowan-r64.test"  # the dnsbl instance's
CONCURRENT = "elder-r64.test"  # the concurrency-limit instance's
RATED = "linden-r64.test"  # the rate-limit instance's
GREY = "aspen-r64.test"  # the greylisting instance's
NX_SENDER = "gone-r64.test"  # a sender domain with no record: NXDOMAIN
SERVFAIL_SENDER = "flaky-r64.test"  # a sender domain whose DNS answers SERVFAIL
NULL_MX_SENDER = "nomail-r64.test"  # a sender domain with a null MX (RFC 7505)
SENDER_DOMAINS = (NX_SENDER, SERVFAIL_SENDER, NULL_MX_SENDER)  # captured by the senders
DNSBL_ZONE = "dnsbl.r64.test"
DOMAINS = {"main": (LOCAL, UNLISTED), "dnsbl": (LISTED,), "concurrency": (CONCURRENT,),
           "rate": (RATED,), "greylist": (GREY,)}  # fmt: skip
BLOCKED_SENDER_CASE = "haraka-access-sender"
BLOCKED_RECIPIENT_CASE = "haraka-access-recipient"

PLUGINS = {
    "main": ("access", "mail_from.is_resolvable", "rcpt_to.in_host_list", "headers",
             "queue/smtp_forward"),
    "dnsbl": ("bench_public", "dns-list", "rcpt_to.in_host_list", "queue/smtp_forward"),
    "concurrency": ("limit", "rcpt_to.in_host_list", "queue/smtp_forward"),
    "rate": ("limit", "rcpt_to.in_host_list", "queue/smtp_forward"),
    "greylist": ("bench_public", "greylist", "rcpt_to.in_host_list", "queue/smtp_forward"),
}  # fmt: skip

PUBLIC = """\
// Round 64's harness (bench/bounce_accuracy/mtas/haraka_receiving_postfix.py): the sending
// MTAs connect from loopback addresses, which Haraka counts private and dns-list skips; this
// marks the connection's address public, as a client on the Internet would be.
exports.hook_connect_init = function (next, connection) {
    connection.remote.is_private = false
    next()
}
"""

REDIS = f"[server]\nhost={REDIS_ADDRESS}\nport={REDIS_PORT}\n"
LIMIT = {
    "concurrency": f"""\
tarpit_delay=0
[redis]
host={REDIS_ADDRESS}
port={REDIS_PORT}
db=4
[concurrency]
enabled=true
max=1
""",
    "rate": f"""\
tarpit_delay=0
[redis]
host={REDIS_ADDRESS}
port={REDIS_PORT}
db=5
[rate_conn]
enabled=true
127.64.0=1/10m
default=0
""",
}
GREYLIST = f"""\
[main]
text = Greylisted. Please come back later.
[redis]
host = {REDIS_ADDRESS}
port = {REDIS_PORT}
db = 11
[skip]
dnswlorg = false
mailspikewl = false
"""

TABLE = Table(
    {
        # the senders' domains resolve to an address no check counts bogus
        "sender.test": Name((("MX", "10 mx.sender.test"),)),
        "mx.sender.test": Name((("A", "192.0.2.25"),)),
        SERVFAIL_SENDER: Name(rcode=SERVFAIL),
        NULL_MX_SENDER: Name((("MX", "0 ."),)),
        **{
            f"{'.'.join(reversed(client.split('.')))}.{DNSBL_ZONE}": Name(
                (("A", "127.0.0.2"), ("TXT", f"{client} is listed in {DNSBL_ZONE}"))
            )
            for client in CLIENTS.values()
        },
        f"2.0.0.127.{DNSBL_ZONE}": Name((("A", "127.0.0.2"),)),  # the zone's test entry
    }
)


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return {domain: PORTS[name] for name, domains in DOMAINS.items() for domain in domains}


def _files(name: str, cases: list[Case]) -> dict[str, str]:
    """Instance ``name``'s configuration files (path under ``config``: text)."""
    domains = DOMAINS[name]
    files = {
        "me": f"mx.{domains[0]}\n",
        "smtp.ini": f"listen=127.0.0.1:{PORTS[name]}\ndaemonize=false\ninactivity_timeout=1200\n",
        "log.ini": "[main]\nlevel=info\ntimestamps=true\n",
        "plugins": "".join(f"{p}\n" for p in PLUGINS[name]),
        # the main instance lists only its local domain: the other is routed to it, unlisted
        "host_list": f"{domains[0]}\n",
        "smtp_forward.ini": f"host=127.0.0.1\nport={DEAD_PORT}\n",
        "redis.ini": REDIS,
    }
    if name == "main":
        stock = (PKG / "node_modules/Haraka/config/connection.ini").read_text()
        stock = re.sub(r"(?m)^max_received=\d+$", "max_received=10", stock)
        files["connection.ini"] = re.sub(r"(?m)^bytes=\d+$", "bytes=20000", stock)
        files["headers.ini"] = "[reject]\nduplicate_singular=true\n"
        files["mail_from.access.blacklist"] = "".join(
            f"{c.sender}\n" for c in cases if c.name == BLOCKED_SENDER_CASE
        )
        files["rcpt_to.access.blacklist"] = "".join(
            f"{c.recipients[-1]}\n" for c in cases if c.name == BLOCKED_RECIPIENT_CASE
        )
    elif name == "dnsbl":
        files["dns-list.ini"] = (
            f"[main]\nperiodic_checks=0\nsearch=all\nzones[]={DNSBL_ZONE}\n"
            f"[{DNSBL_ZONE}]\nreject=true\n"
        )
    elif name in LIMIT:
        files["limit.ini"] = LIMIT[name]
    elif name == "greylist":
        files["greylist.ini"] = GREYLIST
    return files


def _configure(name: str, cases: list[Case]) -> Path:
    """Instance ``name``'s fresh folder under :data:`RUN` (the package's configuration, then
    the instance's files); the folder."""
    run = RUN / name
    config = run / "config"
    shutil.copytree(PKG / "node_modules/Haraka/config", config)
    (run / "plugins").mkdir()
    (run / "queue").mkdir()
    (run / "plugins" / "bench_public.js").write_text(PUBLIC)
    for path, text in _files(name, cases).items():
        (config / path).write_text(text)
    return run


def _spend_rate(client: str) -> None:
    """One connection to the rate instance from ``client`` (greeting read, then QUIT), so the
    sending MTA's own connections from it are over ``rate_conn``'s limit of 1."""
    with socket.create_connection(("127.0.0.1", PORTS["rate"]), timeout=30,
                                  source_address=(client, 0)) as connection:  # fmt: skip
        connection.recv(1024)
        connection.sendall(b"QUIT\r\n")
        connection.recv(1024)


def _hold_connection(client: str) -> socket.socket:
    """A connection to the concurrency instance from ``client``, greeted and left open, so each
    connection the sending MTA opens from it is over ``[concurrency] max=1``."""
    connection = socket.create_connection(("127.0.0.1", PORTS["concurrency"]), timeout=30,
                                          source_address=(client, 0))  # fmt: skip
    connection.recv(1024)
    return connection


@contextmanager
def receiving(cases: list[Case], out: Path, mta: str) -> Iterator[str]:
    """The receiving Haraka instances in their namespace, with the DNS server and a private
    Redis, while open; Haraka's version. Their output is copied beside ``out`` on leaving."""
    version = haraka.install(PKG)
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        redis_log = stack.enter_context((RUN / "redis.log").open("wb"))
        redis = subprocess.Popen(
            ["redis-server", "--bind", REDIS_ADDRESS, "--port", str(REDIS_PORT), "--save", "",
             "--appendonly", "no", "--dir", str(RUN), "--protected-mode", "no"],
            start_new_session=True, stdin=subprocess.DEVNULL, stdout=redis_log, stderr=redis_log,
        )  # fmt: skip
        stack.callback(stop, redis)
        namespace = stack.enter_context(
            Namespace(mta, [Bind(resolv, "/etc/resolv.conf")], grace=5.0)
        )
        daemons = []
        for name in PORTS:
            run = _configure(name, cases)
            output = stack.enter_context((run / "haraka.log").open("wb"))
            command = namespace.inside("node", str(HARAKA), "-c", str(run))
            daemons.append(
                subprocess.Popen(command, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
                                               "HOME": str(run)},
                                 start_new_session=True, stdin=subprocess.DEVNULL,
                                 stdout=output, stderr=output)
            )  # fmt: skip
        try:
            for port in PORTS.values():
                wait_listening(port, "Haraka (receiving)", timeout=60)
            # Haraka listens before ``limit`` has its Redis connection (``init_child``): a
            # connection in that time is not counted, so the harness's own wait for it
            time.sleep(READY)
            _spend_rate(CLIENTS[mta])
            stack.enter_context(_hold_connection(CLIENTS[mta]))
            yield f"haraka-{version} (receiving)"
        finally:
            for daemon in daemons:
                stop(daemon)
            for name in PORTS:
                shutil.copy(RUN / name / "haraka.log", out.parent / f"{mta}-receiving-{name}.log")


RECEIVER = Receiver(CASES, routes_to, "haraka", lambda s: receiving(s.cases, s.out, s.mta),
                    captured=SENDER_DOMAINS, clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, CASES)
    postfix.configure_sending(SEND, SENDERS[MTA], PORT, destination, routes_to(),
                              captured=("sender.test", *SENDER_DOMAINS),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(built, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
