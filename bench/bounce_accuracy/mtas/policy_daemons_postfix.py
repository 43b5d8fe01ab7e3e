"""More Postfix policy daemons run for real behind a receiving Postfix (round 61): sqlgrey and
gross greylisting, gross blocking a client its DNSBL lists, postfwd's rules (rate, size and
recipient-count limits, its own REJECT and DEFER), policyd-rate-limit; and the notices the
sending MTA writes of their answers: this module's Postfix (a second instance of the system's,
``postfix.configure_sending``, from :data:`CLIENT`), ``policy_daemons_exim`` and
``policy_daemons_sendmail`` the others. Round 45 (``policy_postfix``) ran postgrey,
policyd-spf and policyd-weight the same way.

The daemons run from Debian 12's packages (``packages.extract`` into ``/tmp/mta-r61/pkg``,
never installed), with their Perl and Python libraries given by ``-I`` and ``PYTHONPATH``, in a
mount namespace of their own where a private ``/etc/resolv.conf`` names the harness's DNS
server (``dnsserver.py`` on :data:`DNS_ADDRESS`), which lists :data:`CLIENT` in a DNSBL zone
(:data:`DNSBL`) gross asks. The receiving instance (under ``/tmp/mta-r61/recv``, final
destination of :data:`RECEIVING`) has one listener per recipient domain (:data:`LISTENERS`),
each with its restrictions (a policy service at RCPT, at DATA or at the end of the message):

* sqlgrey 1.8 with SQLite, its defaults (``defer_if_permit``, 5 minutes: longer than every
  sender's queue lifetime here);
* gross 1.0.2 greylisting a client its DNSBL lists (``grey_delay`` an hour), and a second
  gross blocking such a client (``block_threshold``), each with its default words;
* postfwd 1.35 (``postfwd1``) with the rules of :data:`POSTFWD_RULES`, their texts those of
  postfwd's documentation: a ``rate()`` that defers and one that rejects, a size limit at the
  end of the message, a ``rcpt()`` limit at DATA, a ``DEFER`` for maintenance and a ``REJECT``
  with no text;
* policyd-rate-limit 1.0.1 (Python) limiting by the client's address, its default
  ``fail_action`` ("defer_if_permit Rate limit reach, retry later").

The rate limits are reached before the sending MTA runs: :func:`prime` sends
:data:`PRIMERS` messages to each rate-limited domain from :data:`CLIENT` (they pass and are
discarded), so every try of a case's message is over the limit. Mail that passes is discarded.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import POLICY_DAEMONS_CASES, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace, listening, wait_listening
from .packages import extract
from .receiver import Receiver, prepared
from .rows import Row

MTA = "policy_daemons_postfix"
ROOT = Path("/tmp/mta-r61")
PACKAGES_ROOT = ROOT / "pkg"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 19161  # the sending Postfix (19161-19182: 3061 + the helper's test port offset, 16100)
SQLGREY_PORT = 19174
GROSS_GREY_PORT = 19175
GROSS_BLOCK_PORT = 19178
POSTFWD_PORT = 19181
RATE_LIMIT_PORT = 19182
DNS_ADDRESS = "127.61.0.1"  # the DNS server of this round
CLIENT = "127.61.0.2"  # the sending MTA's address, as the receiving Postfix sees it
SENDING = "laurel.test"
RECEIVING = "mahonia.test"
DNSBL = "dnsbl.nerium.test"
LISTED = "2.0.61.127"  # CLIENT reversed, as DNSBLs are asked
PRIMERS = 2  # messages that reach each rate limit before the cases are sent
RATE_LIMITED = ("dombeya.test", "ebony.test", "ilex.test")

# recipient domain: (its listener, the restrictions it adds to the listener's smtpd)
LISTENERS = {
    "acacia.test": (19164, "-o smtpd_recipient_restrictions=$r61_sqlgrey"),
    "baobab.test": (19165, "-o smtpd_recipient_restrictions=$r61_gross_grey"),
    "cedrela.test": (19166, "-o smtpd_recipient_restrictions=$r61_gross_block"),
    "dombeya.test": (19167, "-o smtpd_recipient_restrictions=$r61_postfwd"),
    "ebony.test": (19168, "-o smtpd_recipient_restrictions=$r61_postfwd"),
    "fagus.test": (19169, "-o smtpd_end_of_data_restrictions=$r61_postfwd_only"),
    "gmelina.test": (19170, "-o smtpd_data_restrictions=$r61_postfwd_only"),
    "hovenia.test": (19171, "-o smtpd_recipient_restrictions=$r61_postfwd"),
    "ilex.test": (19172, "-o smtpd_recipient_restrictions=$r61_rate_limit"),
    "juglans.test": (19173, "-o smtpd_recipient_restrictions=$r61_postfwd"),
}

RECV_MAIN = """
mynetworks = 127.0.0.1/32
relay_domains = {domains}
smtpd_recipient_restrictions = reject_unauth_destination
r61_sqlgrey = reject_unauth_destination, check_policy_service inet:127.0.0.1:{sqlgrey}
r61_gross_grey = reject_unauth_destination, check_policy_service inet:127.0.0.1:{gross_grey}
r61_gross_block = reject_unauth_destination, check_policy_service inet:127.0.0.1:{gross_block}
r61_postfwd = reject_unauth_destination, check_policy_service inet:127.0.0.1:{postfwd}
r61_postfwd_only = check_policy_service inet:127.0.0.1:{postfwd}
r61_rate_limit = reject_unauth_destination, check_policy_service inet:127.0.0.1:{rate_limit}
local_transport = discard:
"""

PACKAGES = [
    "sqlgrey", "libnet-server-perl", "libdbd-sqlite3-perl", "libdate-calc-perl",
    "libbit-vector-perl", "libcarp-clan-perl",
    "gross", "libc-ares2",
    "postfwd", "libnet-dns-perl", "libdigest-hmac-perl", "libnet-ip-perl",
    "libio-multiplex-perl",
    "policyd-rate-limit",
]  # fmt: skip

SQLGREY_CONF = """\
loglevel = 2
user = nobody
group = nogroup
inet = 127.0.0.1:{port}
pidfile = {root}/sqlgrey/sqlgrey.pid
conf_dir = {root}/sqlgrey
db_type = SQLite
db_name = {root}/sqlgrey/sqlgrey.db
admin_mail =
"""

# gross's words are its defaults (grey_reason "Please try again later", block_reason "Bad
# reputation"); only where it listens, its DNSBL and its thresholds are ours
GROSS_CONF = """\
host = 127.0.0.1
port = {port}
sync_port = {sync}
protocol = postfix
statefile = {root}/gross/{name}.state
check = dnsbl
dnsbl = {dnsbl}
grey_mask = 32
grey_delay = 3600
"""
GROSS_BLOCK = "block_threshold = 1\n"

# postfwd's rules; each action's text is one of its documentation's (postfwd.txt's rate(),
# rcpt() and size examples, its maintenance DEFER, a bare REJECT), the numbers ours
POSTFWD_RULES = """\
id=R61_RATE_DEFER ; recipient_domain==dombeya.test ; action=rate(recipient_domain/2/3600/450 4.7.1 sorry, max 2 requests per hour)
id=R61_RATE_REJECT ; recipient_domain==ebony.test ; action=rate(recipient_domain/2/3600/REJECT limit of 2 exceeded [$$ratecount hits])
id=R61_SIZE ; protocol_state==END-OF-MESSAGE ; size=20000 ; action=REJECT message too big (max. 20KB)
id=R61_RCPT ; protocol_state==DATA ; action=rcpt(sender/2/3600/REJECT limit of 2 recipients per hour for sender $$sender exceeded)
id=R61_MAINTENANCE ; recipient_domain==hovenia.test ; action=DEFER maintenance time - please try again later
id=R61_DENIED ; recipient_domain==juglans.test ; action=REJECT
"""  # noqa: E501

RATE_LIMIT_CONF = """\
debug: True
user: "nobody"
group: "nogroup"
pidfile: "{root}/rate-limit/policyd-rate-limit.pid"
sqlite_config:
    database: "{root}/rate-limit/db.sqlite3"
backend: 0
SOCKET: ["127.0.0.1", {port}]
limits:
    - [{limit}, 3600]
limit_by_sasl: False
limit_by_sender: False
limit_by_ip: True
limited_networks: ["{client}/32"]
report: False
"""


def table() -> Table:
    """What the DNS server answers: :data:`CLIENT` listed in :data:`DNSBL`."""
    return Table(
        {
            f"{LISTED}.{DNSBL}": Name(
                (("A", "127.0.0.2"), ("TXT", f"{CLIENT} is listed; see http://{DNSBL}/"))
            )
        }
    )


def _write(path: Path, text: str, mode: int = 0o644) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def _owned(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.chown(folder, "nobody", "nogroup")
    return folder


def prepare() -> dict[str, str]:
    """Fresh folders, the daemons' packages unpacked, their settings and the receiving
    instance configured; each package's version."""
    for leftover in ("send", "recv"):
        shutil.rmtree(ROOT / leftover, ignore_errors=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    master = "".join(
        f"127.0.0.1:{port} inet n - n - - smtpd {options}\n" for port, options in LISTENERS.values()
    )
    routes = dict.fromkeys(LISTENERS, "discard:")
    postfix.configure(RECV, RECEIVING, master + postfix.SERVICES, routes, {"postmaster": "root"})
    with (RECV / "etc" / "main.cf").open("a") as main:
        main.write(
            RECV_MAIN.format(
                domains=", ".join(LISTENERS), sqlgrey=SQLGREY_PORT, gross_grey=GROSS_GREY_PORT,
                gross_block=GROSS_BLOCK_PORT, postfwd=POSTFWD_PORT, rate_limit=RATE_LIMIT_PORT,
            )
        )  # fmt: skip
    sqlgrey = _owned(RECV / "sqlgrey")
    for shipped in (PACKAGES_ROOT / "etc" / "sqlgrey").iterdir():
        if shipped.name != "sqlgrey.conf":
            shutil.copy(shipped, sqlgrey / shipped.name)
    _write(sqlgrey / "sqlgrey.conf", SQLGREY_CONF.format(port=SQLGREY_PORT, root=RECV))
    for name, port, extra in (
        ("grey", GROSS_GREY_PORT, ""),
        ("block", GROSS_BLOCK_PORT, GROSS_BLOCK),
    ):
        text = GROSS_CONF.format(port=port, sync=port + 2, root=RECV,
                                 name=name, dnsbl=DNSBL)  # fmt: skip
        _write(RECV / f"gross-{name}.conf", text + extra)
    _owned(RECV / "gross")
    _write(RECV / "postfwd.cf", POSTFWD_RULES)
    _owned(RECV / "rate-limit")
    _write(
        RECV / "policyd-rate-limit.yaml",
        RATE_LIMIT_CONF.format(root=RECV, port=RATE_LIMIT_PORT, limit=PRIMERS, client=CLIENT),
    )
    return versions


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return {domain: port for domain, (port, _) in LISTENERS.items()}


@contextmanager
def _postfwd(space: Namespace) -> Iterator[None]:
    """postfwd, which runs only as a daemon of its own (``-d``: Net::Server's setsid), in
    ``space`` while open; stopped by the process id it writes."""
    pkg = PACKAGES_ROOT
    pid = RECV / "postfwd.pid"
    command = [
        "perl", "-T", f"-I{pkg}/usr/share/perl5", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36",
        f"{pkg}/usr/sbin/postfwd1", "-d", "-f", str(RECV / "postfwd.cf"), "-i", "127.0.0.1",
        "-p", str(POSTFWD_PORT), "-u", "nobody", "-g", "nogroup", "--nodns", "-L",
        "--pidfile", str(pid),
    ]  # fmt: skip
    with (RECV / "postfwd.log").open("wb") as log:
        subprocess.run(space.inside(*command), check=True, stdout=log, stderr=log)
    try:
        wait_listening(POSTFWD_PORT, "postfwd")
        yield
    finally:
        if pid.exists():
            try:
                os.kill(int(pid.read_text().split()[0]), 15)
            except (ProcessLookupError, ValueError):
                pass


def _daemons(space: Namespace, stack: ExitStack) -> None:
    """sqlgrey, the two gross daemons, postfwd and policyd-rate-limit in ``space``, each
    stopped on leaving ``stack``."""
    pkg = PACKAGES_ROOT
    perl = ["perl", f"-I{pkg}/usr/share/perl5", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36"]
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH": f"{pkg}/usr/lib/x86_64-linux-gnu",
        "PYTHONPATH": f"{pkg}/usr/lib/python3/dist-packages",
    }
    sqlgrey = [*perl, f"{pkg}/usr/sbin/sqlgrey", "-f", str(RECV / "sqlgrey" / "sqlgrey.conf")]
    stack.enter_context(
        listening(space.inside(*sqlgrey), SQLGREY_PORT, "sqlgrey", RECV / "sqlgrey.log", env=env)
    )
    for name, port in (("grey", GROSS_GREY_PORT), ("block", GROSS_BLOCK_PORT)):
        command = [f"{pkg}/usr/sbin/grossd", "-r", "-u", "nobody",
                   "-f", str(RECV / f"gross-{name}.conf")]  # fmt: skip
        subprocess.run([*command, "-C"], env=env, check=True, capture_output=True)  # its state
        command.insert(1, "-d")  # in the foreground
        stack.enter_context(
            listening(space.inside(*command), port, f"gross ({name})",
                      RECV / f"gross-{name}.log", env=env)
        )  # fmt: skip
    stack.enter_context(_postfwd(space))
    rate_limit = ["/usr/bin/python3", f"{pkg}/usr/bin/policyd-rate-limit",
                  "-f", str(RECV / "policyd-rate-limit.yaml")]  # fmt: skip
    stack.enter_context(
        listening(space.inside(*rate_limit), RATE_LIMIT_PORT, "policyd-rate-limit",
                  RECV / "policyd-rate-limit.log", env=env)
    )  # fmt: skip


def prime() -> None:
    """:data:`PRIMERS` messages from :data:`CLIENT` to each rate-limited domain, straight to
    its listener: they pass, and the limits are reached before any case is sent."""
    ports = routes_to()
    for domain in RATE_LIMITED:
        with smtplib.SMTP("127.0.0.1", ports[domain], timeout=30,
                          source_address=(CLIENT, 0)) as client:  # fmt: skip
            client.ehlo(SENDING)
            for number in range(1, PRIMERS + 1):
                client.sendmail(
                    f"primer-{number}@{SENDING}",
                    [f"primer-{number}@{domain}"],
                    f"From: primer-{number}@{SENDING}\r\nSubject: primer {number}\r\n\r\nhi\r\n",
                )


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """The DNS server, the daemons and the receiving instance, in their namespace, while open,
    the rate limits reached; the instance's log and the daemons' are copied beside ``out`` on
    leaving."""
    resolv = resolv_conf(RECV / "resolv.conf", DNS_ADDRESS)
    with ExitStack() as stack:
        stack.enter_context(serving(table(), DNS_ADDRESS))
        space = stack.enter_context(
            Namespace("receiving postfix", [Bind(resolv, "/etc/resolv.conf")], grace=10.0)
        )
        _daemons(space, stack)
        etc = str(RECV / "etc")
        space.run("postfix", "-c", etc, "start")
        stack.callback(shutil.copy, RECV / "maillog", out.parent / f"{mta}-receiving.log")
        for log in ("sqlgrey.log", "policyd-rate-limit.log"):
            stack.callback(shutil.copy, RECV / log, out.parent / f"{mta}-{log}")
        stack.callback(space.run, "postfix", "-c", etc, "stop", check=False)
        prime()
        yield


def version(versions: dict[str, str]) -> str:
    """The daemons' versions, for the rows."""
    return (
        f"sqlgrey {versions['sqlgrey']}; gross {versions['gross']}; postfwd "
        f"{versions['postfwd']}; policyd-rate-limit {versions['policyd-rate-limit']}"
    )


RECEIVER = Receiver(POLICY_DAEMONS_CASES, routes_to, "policy",
                    prepared(prepare, receiving, version), clients=CLIENT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, POLICY_DAEMONS_CASES)
    versions = prepare()
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENT)
    with receiving(out, MTA):
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version(versions))
