"""A receiving Postfix's own restrictions and limits run for real (round 60): no policy daemon,
no milter (rounds 45, 55-57), only what Postfix's smtpd and postscreen refuse by themselves,
and the notices the sending MTA writes of it: this module's Postfix (a second instance of the
system's, ``postfix.configure_sending``, from :data:`CLIENT`), ``restrictions_exim`` and
``restrictions_sendmail`` the others.

The receiving instance of the system's Postfix (under ``/tmp/mta-r60/recv``, host name
``mx.rue.test``) has one listener per recipient domain (:data:`LISTENERS`), each with one
restriction or limit set on it (``-o`` in ``master.cf``), and runs in a mount namespace whose
private ``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``, on
:data:`DNS_ADDRESS`), which knows none of the names asked but the DNS blocklist's entry for
:data:`CLIENT`: every other name is NXDOMAIN (the sending hosts' HELO names and the reverse
name of their address, ``sender.test``, the recipient domain of the domain check). What each
listener refuses or defers:

* ``burdock.test``: ``message_size_limit`` 10,000 bytes (the message is 30,000, announced with
  SIZE): "552 5.3.4 Message size exceeds fixed limit" at MAIL;
* ``chicory.test``: ``reject_unknown_recipient_domain`` (a relay for a domain the DNS does
  not know), ``unknown_address_reject_code`` 550 as sites set it: "550 5.1.2 ... Recipient
  address rejected: Domain not found";
* ``dittany.test``: ``reject_unknown_sender_domain``, the same code: "550 5.1.8 ... Sender
  address rejected: Domain not found";
* ``eyebright.test``: ``reject_unknown_client_hostname`` (no PTR record for the client),
  ``unknown_client_reject_code`` 550: "Client host rejected: cannot find your hostname";
* ``fennel.test``: ``reject_unknown_helo_hostname``, ``unknown_hostname_reject_code`` 550:
  "Helo command rejected: Host not found";
* ``gentian.test``: anvil's ``smtpd_client_message_rate_limit`` 1 per hour
  (``anvil_rate_time_unit``), used up by one message of the harness's own from the client's
  address before the cases: "450 4.7.1 Error: too much mail from ...", at every try;
* ``hyssop.test`` and ``lovage.test``: ``reject_unverified_recipient`` (address verification:
  a probe through the instance's own queue to the next hop). hyssop's next hop is the
  scripted server, which refuses the address (550 5.1.1), with
  ``unverified_recipient_reject_code`` 550: "550 5.1.1 ... undeliverable address: host ...
  said: 550 5.1.1 ..."; lovage's is a port where nothing listens: "450 4.1.1 ... unverified
  address: connect to ...: Connection refused" (``unverified_recipient_defer_code``, 450),
  at every try;
* ``mugwort.test``: postscreen in front of smtpd, ``postscreen_dnsbl_action = enforce`` with a
  zone of our DNS server that lists the client (``postscreen_greet_wait`` 2 s, its value under
  stress: the sending Postfix here waits 5 s for a greeting, postscreen's default 6 s): "550
  5.7.1 Service unavailable; client [...] blocked using bl.rue.test" at RCPT;
* ``nettle.test``: ``queue_minfree`` larger than any disk: "452 4.3.1 Insufficient system
  storage" at MAIL, at every try.

Added after the round's rules (its second part):

* ``henbane.test``: ``smtpd_client_connection_rate_limit`` 1 per hour, used up by one
  connection of the harness's: "421 4.7.0 ... Error: too many connections from ..." in place
  of the greeting, at every try;
* ``hemlock.test``: ``smtpd_client_recipient_rate_limit`` 1 per hour, a message to two of
  its addresses: the first taken, the second "450 4.7.1 Error: too many recipients from
  ...", at every try;
* ``mallow.test``: not a relay domain of the instance, ``defer_unauth_destination``: "454
  4.7.1 ... Relay access denied", at every try.

Mail that passes is discarded.
"""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import milters_postfix, postfix
from .cases import RESTRICTION_CASES, load, script_replies
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace, wait_listening
from .packages import installed_version
from .rows import Row

MTA = "restrictions_postfix"
ROOT = Path("/tmp/mta-r60")
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 18640  # 2640 + the helper's test port offset (16000): the sending Postfix
CLIENT = "127.60.0.2"  # the sending MTA's address, as the receiving Postfix sees it
DNS_ADDRESS = "127.60.0.53"  # the DNS server of this round (round 41's is 127.0.0.41)
SENDING = "tarragon.test"
RECEIVING = "rue.test"
DNSBL_ZONE = "bl.rue.test"
SIZE_LIMIT = 10_000
# recipient domain: (the receiving instance's listener, the settings laid on it)
LISTENERS = {
    "burdock.test": (18643, f"-o message_size_limit={SIZE_LIMIT}"),
    "chicory.test": (
        18644, "-o smtpd_recipient_restrictions=reject_unknown_recipient_domain"
        " -o unknown_address_reject_code=550",
    ),
    "dittany.test": (
        18645, "-o smtpd_sender_restrictions=reject_unknown_sender_domain"
        " -o unknown_address_reject_code=550",
    ),
    "eyebright.test": (
        18646, "-o smtpd_client_restrictions=reject_unknown_client_hostname"
        " -o unknown_client_reject_code=550",
    ),
    "fennel.test": (
        18647, "-o smtpd_helo_required=yes -o smtpd_helo_restrictions=reject_unknown_helo_hostname"
        " -o unknown_hostname_reject_code=550",
    ),
    "gentian.test": (18648, "-o smtpd_client_message_rate_limit=1"),
    "hyssop.test": (
        18650, "-o smtpd_recipient_restrictions=reject_unverified_recipient"
        " -o unverified_recipient_reject_code=550",
    ),
    "lovage.test": (18651, "-o smtpd_recipient_restrictions=reject_unverified_recipient"),
    "mugwort.test": (18653, ""),  # postscreen's listener (POSTSCREEN)
    "nettle.test": (18654, "-o queue_minfree=1000000000000000"),
    # the round's second part, added after its rules
    "henbane.test": (18649, "-o smtpd_client_connection_rate_limit=1"),
    "hemlock.test": (18655, "-o smtpd_client_recipient_rate_limit=1"),
    "mallow.test": (18652, "-o smtpd_relay_restrictions=defer_unauth_destination"),
}  # fmt: skip
POSTSCREEN = "mugwort.test"
NOT_RELAYED = "mallow.test"  # no relay domain of the instance: defer_unauth_destination answers
MESSAGE_RATE = "gentian.test"  # its one message an hour taken by the harness before the cases
CONNECTION_RATE = "henbane.test"  # its one connection an hour taken likewise
VERIFIED_BY_SCRIPT = "hyssop.test"  # address verification's next hop: the scripted server
VERIFIED_BY_NOTHING = "lovage.test"  # ... a port where nothing listens

RECV_MASTER = """\
127.0.0.1:{postscreen} inet n - n - 1 postscreen
smtpd pass - - n - - smtpd
dnsblog unix - - n - 0 dnsblog
tlsproxy unix - - n - 0 tlsproxy
"""

RECV_MAIN = """
mynetworks = 127.0.0.1/32
relay_domains = {domains}
anvil_rate_time_unit = 3600s
postscreen_dnsbl_sites = {zone}
postscreen_dnsbl_threshold = 1
postscreen_dnsbl_action = enforce
postscreen_greet_wait = 2s
address_verify_poll_count = 3
local_transport = discard:
"""


def table() -> Table:
    """What the DNS server answers: the blocklist's entry for :data:`CLIENT` (its address
    reversed under the zone, as DNSBLs are asked); every other name NXDOMAIN."""
    listed = ".".join(reversed(CLIENT.split(".")))
    return Table({f"{listed}.{DNSBL_ZONE}": Name((("A", "127.0.0.2"),))})


def prepare(destination: Destination) -> None:
    """Fresh folders and the receiving instance configured: its listeners, the next hops of
    address verification (the scripted server, and a port where nothing listens), mail to
    the other domains discarded."""
    milters_postfix.fresh(ROOT)
    master = "".join(
        f"127.0.0.1:{port} inet n - n - - smtpd {options}\n"
        for domain, (port, options) in LISTENERS.items()
        if domain != POSTSCREEN
    )
    master += RECV_MASTER.format(postscreen=LISTENERS[POSTSCREEN][0])
    routes = dict.fromkeys(LISTENERS, "discard:")
    routes[VERIFIED_BY_SCRIPT] = f"smtp:[{destination.host}]:{destination.port}"
    routes[VERIFIED_BY_NOTHING] = f"smtp:[{destination.host}]:{destination.refused_port}"
    postfix.configure(RECV, RECEIVING, master + postfix.SERVICES, routes, {"postmaster": "root"})
    relayed = [domain for domain in LISTENERS if domain != NOT_RELAYED]
    with (RECV / "etc" / "main.cf").open("a") as main:
        main.write(RECV_MAIN.format(domains=", ".join(relayed), zone=DNSBL_ZONE))


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return {domain: port for domain, (port, _) in LISTENERS.items()}


def use_up_rate_limits() -> None:
    """From :data:`CLIENT`, one message to the message-rate listener and one connection to the
    connection-rate listener: their limits of one an hour are reached before any case comes."""
    message = b"Subject: r60 warm-up\r\n\r\nThe rate limit's first message.\r\n"
    port = LISTENERS[MESSAGE_RATE][0]
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(CLIENT, 0)) as client:
        client.sendmail("warm-up@rue.test", [f"warm-up@{MESSAGE_RATE}"], message)
    port = LISTENERS[CONNECTION_RATE][0]
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(CLIENT, 0)) as client:
        client.noop()


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """The DNS server and the receiving instance in its namespace while open, its rate limits
    used up; its log is copied beside ``out`` on leaving."""
    resolv = resolv_conf(RECV / "resolv.conf", DNS_ADDRESS)
    with ExitStack() as stack:
        stack.enter_context(serving(table(), DNS_ADDRESS))
        space = stack.enter_context(
            Namespace("receiving postfix", [Bind(resolv, "/etc/resolv.conf")], grace=10.0)
        )
        milters_postfix.start_receiving(RECV, space, stack, out, mta)
        for port, _ in LISTENERS.values():
            wait_listening(port, f"the receiving Postfix's listener {port}")
        use_up_rate_limits()
        yield


def version() -> str:
    """The receiving Postfix's version, for the rows."""
    return f"receiving postfix-{installed_version('postfix')}"


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, RESTRICTION_CASES)
    script_replies(destination, built)
    prepare(destination)
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENT)
    with receiving(out, MTA):
        sending = installed_version("postfix")
        return postfix.run(SEND, PORT, destination, built, out, MTA,
                           version=f"postfix-{sending}; {version()}")  # fmt: skip
