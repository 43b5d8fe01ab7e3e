"""SPF temporary and permanent errors run for real (round 53): postfix-policyd-spf-python behind
a receiving Postfix, as round 45's (``policy_postfix``) but told to act on them
(``TempError_Defer = True``, ``PermError_reject = True``), and the notices the sending MTA
writes: this module's Postfix (a second instance of the system's, ``postfix.configure``, from
:data:`CLIENT`), ``spf_exim`` and ``spf_sendmail`` the others.

policyd-spf and its Python libraries run from Debian 12's packages (``packages.extract`` into
``/tmp/mta-spf/pkg``, never installed), spawned by the receiving instance (under
``/tmp/mta-spf/recv``) in a mount namespace where a private ``/etc/resolv.conf`` names the
harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`, an address of this round's
own). The cases' senders are of domains whose SPF lookup fails (:data:`TABLE`):
``lists.sender.test`` answers SERVFAIL, ``mail.sender.test`` never answers, and
``info.sender.test`` publishes a malformed record (an ``ip4:`` mechanism with no valid
address), ``promo.sender.test`` two records, ``deals.sender.test`` a record of more than ten
DNS lookups (eleven includes); every recipient domain (:data:`RECIPIENTS`) is taken by the
receiving instance and discarded once the check passes. The sending MTA routes the senders'
domains to the capture server.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import SPF_CASES, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace, write_file
from .packages import extract
from .receiver import Receiver, prepared
from .rows import Row

MTA = "spf_postfix"
ROOT = Path("/tmp/mta-spf")
PACKAGES_ROOT = ROOT / "pkg"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 7830  # 2530 + the helper's test port offset (5300): the sending Postfix
RECV_PORT = 7833  # the receiving instance's listener with the SPF check
DNS_ADDRESS = "127.0.0.154"  # the DNS server of this round (others use .41 to .57, .143, .153)
CLIENT = "127.0.0.155"  # the sending MTA's address, as policyd-spf sees it
SENDING = "tangelo.test"
RECEIVING = "ugli.test"
RECIPIENTS = ("tamarillo.test",)
SENDER_DOMAINS = (
    "lists.sender.test", "mail.sender.test", "info.sender.test", "promo.sender.test",
    "deals.sender.test",
)  # fmt: skip
# deals.sender.test's record names more includes than SPF's limit of ten DNS lookups (RFC 7208
# 4.6.4): each of these names publishes a record that matches nothing.
INCLUDES = tuple(f"spf{number}.sender.test" for number in range(11))
PACKAGES = [
    "postfix-policyd-spf-python", "python3-spf-engine", "python3-spf", "python3-authres",
    "python3-dns", "python3-dnspython", "python3-pkg-resources",
]  # fmt: skip

TABLE = Table(
    {
        "sender.test": Name((("TXT", "v=spf1 ip4:127.0.0.155 -all"),)),
        "lists.sender.test": Name(rcode=2),  # SERVFAIL on every query
        "mail.sender.test": Name(silent=True),  # no answer at all
        "info.sender.test": Name((("TXT", "v=spf1 ip4:127.0.0.155/40 -all"),)),  # malformed
        # two SPF records (RFC 7208 4.5: a permanent error)
        "promo.sender.test": Name(
            (("TXT", "v=spf1 ip4:127.0.0.155 -all"), ("TXT", "v=spf1 ip4:192.0.2.1 -all"))
        ),
        "deals.sender.test": Name(
            (("TXT", "v=spf1 " + " ".join(f"include:{name}" for name in INCLUDES) + " -all"),)
        ),
    }
    | {name: Name((("TXT", "v=spf1 ip4:192.0.2.1 -all"),)) for name in INCLUDES}
)

RECV_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
policyd-spf unix - n n - 0 spawn user=nobody argv={spf} {root}/policyd-spf.conf
"""

RECV_MAIN = """
mynetworks = 127.0.0.1/32
relay_domains = {domains}
smtpd_recipient_restrictions = reject_unauth_destination,
  check_policy_service unix:private/policyd-spf
policyd-spf_time_limit = 3600
local_transport = discard:
"""

SPF_CONF = """\
debugLevel = 1
TestOnly = 1
HELO_reject = False
Mail_From_reject = Fail
PermError_reject = True
TempError_Defer = True
skip_addresses = 192.0.2.99/32
"""


def prepare() -> str:
    """Fresh folders, policyd-spf's packages unpacked and the receiving instance configured;
    policyd-spf's version."""
    for leftover in ("send", "recv"):
        shutil.rmtree(ROOT / leftover, ignore_errors=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    pkg = PACKAGES_ROOT
    spf = write_file(
        ROOT / "policyd-spf",
        f"#!/bin/sh\nPYTHONPATH={pkg}/usr/lib/python3/dist-packages exec /usr/bin/python3 "
        f'{pkg}/usr/bin/policyd-spf "$1"\n',
        0o755,
    )
    write_file(ROOT / "policyd-spf.conf", SPF_CONF)
    master = RECV_MASTER.format(port=RECV_PORT, spf=spf, root=ROOT) + postfix.SERVICES
    routes = {domain: "discard:" for domain in RECIPIENTS}
    postfix.configure(RECV, RECEIVING, master, routes, {"postmaster": "root"})
    with (RECV / "etc" / "main.cf").open("a") as main:
        main.write(RECV_MAIN.format(domains=", ".join(RECIPIENTS)))
    return versions["postfix-policyd-spf-python"]


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return dict.fromkeys(RECIPIENTS, RECV_PORT)


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """The DNS server and the receiving instance, in its namespace, while open; its log is
    copied beside ``out`` on leaving."""
    resolv = resolv_conf(RECV / "resolv.conf", DNS_ADDRESS)
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        space = stack.enter_context(
            Namespace("receiving postfix", [Bind(resolv, "/etc/resolv.conf")], grace=10.0)
        )
        etc = str(RECV / "etc")
        space.run("postfix", "-c", etc, "start")
        stack.callback(shutil.copy, RECV / "maillog", out.parent / f"{mta}-receiving.log")
        stack.callback(space.run, "postfix", "-c", etc, "stop", check=False)
        yield


RECEIVER = Receiver(SPF_CASES, routes_to, "spf",
                    prepared(prepare, receiving, "policyd-spf {}".format),
                    captured=SENDER_DOMAINS, captured_as="capture", clients=CLIENT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, SPF_CASES)
    version = prepare()
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(),
                              captured=("sender.test", *SENDER_DOMAINS), client=CLIENT)  # fmt: skip
    with receiving(out, MTA):
        return postfix.run(SEND, PORT, destination, built, out, MTA,
                           behind=f"policyd-spf {version}")  # fmt: skip
