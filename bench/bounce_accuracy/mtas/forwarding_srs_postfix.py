"""A forward through SRS that fails at its target, in the forwarder's own notice (round 78):
postsrsd 1.10 (Debian 12's package, unpacked under :data:`ROOT`, never installed) rewrites the
envelope sender of every message a receiving Postfix (a second instance of the system's,
:data:`RECEIVING`, final destination of :data:`LOCAL`) sends on, as its documentation sets it
up (``sender_canonical_maps`` of its forward table, ``recipient_canonical_maps`` of its
reverse one). An alias of :data:`LOCAL` forwards to an address of :data:`TARGET`, routed to
the harness's scripted server, which refuses it at RCPT; the forwarder's notice goes to the
SRS address, which the reverse table turns back into the original sender (the capture
server). The sending MTA (a third instance of the system's Postfix) takes the case and hands it
on; the notice is the receiving Postfix's whatever MTA sends. Round 81 put Exim and Sendmail in
front of it too (``forwarding_srs_exim``, ``forwarding_srs_sendmail``, through
:data:`RECEIVER`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import FORWARDING_CASES, load, script_replies
from .destination import Destination
from .host import ENV, listening, wait_listening
from .packages import extract, installed_version
from .receiver import Receiver, Sending
from .rows import Row

MTA = "forwarding_srs_postfix"
ROOT = Path("/tmp/r78-srs")
RECEIVING = ROOT / "receiving"  # the forwarding Postfix instance
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 19832  # the sending Postfix (round 78's block, 19825-19849)
RECEIVING_PORT = 19833
SRS_PORTS = {"forward": 19834, "reverse": 19835}
CLIENT = "127.78.0.5"
# The address each sending MTA binds to (Exim's and Sendmail's: round 81's).
CLIENTS = {MTA: CLIENT, "forwarding_srs_exim": "127.81.0.2",
           "forwarding_srs_sendmail": "127.81.0.3"}  # fmt: skip
LOCAL = "whitebeam-r78.test"  # the forwarder's own domain (and postsrsd's)
TARGET = "holly-r78.test"  # where the aliases forward to: the scripted server
FORWARDS = {"mia.fw": f"mia.w@{TARGET}", "noe.fw": f"noe.w@{TARGET}"}
SRS = """\
sender_canonical_maps = tcp:127.0.0.1:{forward}
sender_canonical_classes = envelope_sender
recipient_canonical_maps = tcp:127.0.0.1:{reverse}
recipient_canonical_classes = envelope_recipient, header_recipient
"""


def _configure(destination: Destination) -> None:
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        TARGET: f"smtp:[{destination.host}]:{destination.port}",
    }
    master = postfix.LISTENER.format(port=RECEIVING_PORT) + postfix.SERVICES
    postfix.configure(RECEIVING, LOCAL, master, routes, FORWARDS | {"postmaster": "root"})
    with (RECEIVING / "etc" / "main.cf").open("a") as main:
        main.write(SRS.format(**SRS_PORTS))


@contextmanager
def receiving(destination: Destination, out: Path) -> Iterator[str]:
    """postsrsd and the forwarding Postfix while open; postsrsd's version. The Postfix's log
    is copied beside ``out`` on leaving."""
    version = extract(["postsrsd"], ROOT / "root")["postsrsd"]
    _configure(destination)
    secret = RECEIVING / "postsrsd.secret"
    secret.write_text("r78-not-a-real-secret\n")
    secret.chmod(0o600)
    command = [str(ROOT / "root/usr/sbin/postsrsd"), "-s", str(secret), "-d", LOCAL,
               "-l", "127.0.0.1", "-4", "-f", str(SRS_PORTS["forward"]),
               "-r", str(SRS_PORTS["reverse"])]  # fmt: skip
    with ExitStack() as stack:
        log = RECEIVING / "postsrsd.log"
        stack.enter_context(listening(command, SRS_PORTS["forward"], "postsrsd", log, ENV))
        wait_listening(SRS_PORTS["reverse"], "postsrsd (reverse)")
        postfix._postfix(RECEIVING, "start")
        stack.callback(shutil.copy, RECEIVING / "maillog", out.parent / f"{out.name}-receiving.log")
        stack.callback(postfix._postfix, RECEIVING, "stop")
        yield f"postsrsd-{version}"


@contextmanager
def serving(sending: Sending) -> Iterator[str]:
    """The receiving side for a sending MTA in front of it (round 81): the sending module's
    cases' replies scripted, postsrsd and the forwarding Postfix while open."""
    script_replies(sending.destination, sending.cases)
    with receiving(sending.destination, sending.out) as version:
        yield f"postfix-{installed_version('postfix')}, {version} (receiving)"


RECEIVER = Receiver(FORWARDING_CASES, lambda: {LOCAL: RECEIVING_PORT}, "srs", serving,
                    clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, FORWARDING_CASES)
    script_replies(destination, built)
    postfix.configure_sending(SEND, "medlar-s-r78.test", PORT, destination,
                              {LOCAL: RECEIVING_PORT}, client=CLIENT)  # fmt: skip
    with receiving(destination, out) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
