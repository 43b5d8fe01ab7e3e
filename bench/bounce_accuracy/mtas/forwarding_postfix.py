"""Forwarding failures made by a RECEIVING Postfix, in other MTAs' notices (round 78): a second
instance of the system's Postfix (:data:`RECEIVING`, ``postfix -c``) is the final destination
of :data:`LOCAL` on 127.0.0.1:``PORTS["main"]``; the sending MTA (this module: a third instance
of the system's Postfix; ``forwarding_exim`` and ``forwarding_sendmail`` the others) sends to
it from a loopback address of its own (:data:`CLIENTS`) and writes the notices, except where
the receiving Postfix takes the mail and fails it later: then the receiving Postfix writes the
notice, to the capture server.

What fails, each by Postfix's own words (its ``smtpd_check.c``, ``local/*.c``, ``cleanup``):

* a mailbox that has moved: ``relocated_maps`` has :data:`MOVED` (relocated(5)): "550 5.1.6
  <address>: Recipient address rejected: User has moved to <new>" at RCPT; an alias of
  :data:`LOCAL` that forwards to it is taken and fails at the forwarding ("user has moved to",
  the receiving Postfix's notice);
* a forwarding loop through the sending MTA (A -> B -> A -> B): an alias forwards to an address
  of :data:`RETURN`, which the receiving Postfix routes back to the sending MTA and the sending
  MTA to the receiving Postfix's second listener, whose cleanup maps it back (``virtual_alias_
  maps`` of that listener only) to the alias's own address; local(8) finds its own
  Delivered-To: line, "mail forwarding loop for <address>" (the receiving Postfix's notice);
* a loop that no Delivered-To: line stops: an alias forwards to an address of :data:`RING`,
  which the receiving Postfix routes to the sending MTA and the sending MTA back to the
  receiving Postfix, until one of them counts too many Received: lines (Postfix's
  ``hopcount_limit``, 50; Exim's ``received_headers_max``, 30; Sendmail's ``MaxHopCount``, 25):
  the MTA that counts them refuses or fails the message in its own words.

Beside it, round 21b's unpacked Sendmail 8.17 (``sendmail.configure``, a run folder of its own,
:data:`RECEIVING_SENDMAIL`) is the final destination of :data:`MOVED_SENDMAIL` on
127.0.0.1:``PORTS["sendmail"]`` with FEATURE(`redirect'): an alias to ``<new>.REDIRECT`` is a
mailbox that has moved. Sendmail takes every RCPT of its local domain (its local mailer checks
users later) and fails the alias in its own notice, "551 5.1.1 User has moved; please try
<new>".
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix, sendmail
from .cases import FORWARDING_CASES, load
from .destination import Destination
from .host import ENV, listening
from .packages import installed_version
from .receiver import Receiver, Sending
from .rows import Row

MTA = "forwarding_postfix"
CASES = FORWARDING_CASES
ROOT = Path("/tmp/r78-forwarding")
RECEIVING = ROOT / "receiving"  # the receiving Postfix instance
RECEIVING_SENDMAIL = ROOT / "receiving-sendmail"  # the receiving Sendmail's run folder
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 19825  # the sending Postfix (19825-19849: round 78's block, no other module's)
# The receiving Postfix's listeners: ``back`` maps RETURN's addresses back to LOCAL's.
PORTS = {"main": 19828, "back": 19829, "sendmail": 19830}
# The address each sending MTA's SMTP client binds to.
CLIENTS = {
    "forwarding_postfix": "127.78.0.2",
    "forwarding_exim": "127.78.0.3",
    "forwarding_sendmail": "127.78.0.4",
}
LOCAL = "sorb-r78.test"  # the receiving Postfix's own domain
RETURN = "larch-r78.test"  # routed by the receiving Postfix to the sender, back by it
RING = "aspen-r78.test"  # routed by each of the two to the other
NEW = "fern-r78.test"  # where the moved mailboxes have gone (never sent to)
MOVED_SENDMAIL = "rowan-r78.test"  # the receiving Sendmail's own domain
TAKEN = ("ada.ro", "ben.su")  # local parts delivered (to /dev/null)
MOVED = ("ida.mo",)  # relocated(5): each has moved to the same local part at NEW
FORWARDS = {
    "kai.fw": f"ida.mo@{LOCAL}",  # to a mailbox that has moved
    "lou.py": f"lou.py@{RETURN}",  # round through the sending MTA and back: Delivered-To:
    "hop.er": f"hop.er@{RING}",  # round and round between the two: hop counts
}

# The receiving Sendmail's aliases: FEATURE(`redirect')'s ".REDIRECT" (cf/feature/redirect.m4:
# "551 User has moved; please try <address>"). Two aliases that name each other make no loop
# words there: Sendmail drops the repeated address and hands the first to its local mailer
# (mail.local's "User unknown", seen in a probe), so none is made.
SENDMAIL_ALIASES = {"ida.mo": f"ida.mo@{NEW}.REDIRECT", **{user: "/dev/null" for user in TAKEN},
                    "postmaster": "root"}  # fmt: skip
REDIRECT = "FEATURE(`redirect')dnl\n"

BACK_LISTENER = (
    "127.0.0.1:{port} inet n - n - - smtpd -o cleanup_service_name=cleanback\n"
    "cleanback unix n - n - 0 cleanup -o virtual_alias_maps=texthash:{etc}/back\n"
)


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving listener's port it goes to."""
    postfixes = {LOCAL: PORTS["main"], RING: PORTS["main"], RETURN: PORTS["back"]}
    return postfixes | {MOVED_SENDMAIL: PORTS["sendmail"]}


def _configure(sending: Sending) -> None:
    """The receiving instance under :data:`RECEIVING` (fresh): :data:`RETURN` and :data:`RING`
    routed to the sending MTA's own listener, the senders' domain to the capture server."""
    etc = RECEIVING / "etc"
    destination = sending.destination
    routes = {"sender.test": f"smtp:[{destination.host}]:{destination.capture_port}"}
    routes |= dict.fromkeys((RETURN, RING), f"smtp:[127.0.0.1]:{sending.port}")
    aliases = {user: "/dev/null" for user in TAKEN} | FORWARDS | {"postmaster": "root"}
    master = postfix.LISTENER.format(port=PORTS["main"])
    master += BACK_LISTENER.format(port=PORTS["back"], etc=etc) + postfix.SERVICES
    postfix.configure(RECEIVING, LOCAL, master, routes, aliases)
    (etc / "relocated").write_text("".join(f"{u}@{LOCAL} {u}@{NEW}\n" for u in MOVED))
    (etc / "back").write_text(f"lou.py@{RETURN} lou.py@{LOCAL}\n")
    with (etc / "main.cf").open("a") as main:
        main.write(f"relocated_maps = texthash:{etc}/relocated\n")


def _sendmail(sending: Sending) -> list[str]:
    """The receiving Sendmail's folder (``sendmail.configure``, fresh: final destination of
    :data:`MOVED_SENDMAIL`, with FEATURE(`redirect')); the command of its daemon."""
    run = RECEIVING_SENDMAIL
    settings = sendmail.BESIDE + REDIRECT
    sendmail.configure(sending.destination, run, MOVED_SENDMAIL, PORTS["sendmail"],
                       SENDMAIL_ALIASES, settings)  # fmt: skip
    cf = str(run / "sendmail.cf")
    return sendmail._named(MOVED_SENDMAIL, sendmail.BIN / "sendmail", "-C", cf, "-bD")


@contextmanager
def receiving(sending: Sending) -> Iterator[str]:
    """The receiving Postfix and Sendmail while open; their versions. The Postfix's log is
    copied beside the notices on leaving (the Sendmail's goes to syslog, as round 21b's)."""
    _configure(sending)
    version = sendmail.unpacked()
    command = _sendmail(sending)
    logs = sending.out.parent
    with ExitStack() as stack:
        log = RECEIVING_SENDMAIL / "daemon.log"
        stack.enter_context(listening(command, PORTS["sendmail"], "sendmail (receiving)", log, ENV))
        postfix._postfix(RECEIVING, "start")
        stack.callback(shutil.copy, RECEIVING / "maillog", logs / f"{sending.mta}-receiving.log")
        stack.callback(postfix._postfix, RECEIVING, "stop")
        yield f"postfix-{installed_version('postfix')}, sendmail-{version} (receiving)"


RECEIVER = Receiver(CASES, routes_to, "forwarding", receiving, clients=CLIENTS)


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, CASES)
    postfix.configure_sending(SEND, "medlar-r78.test", PORT, destination, routes_to(),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(Sending(MTA, built, destination, out, PORT)) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
