"""Postfix's notices of its own failures that are no reply of the remote server (round 40): an
instance of the system's Postfix configured as round 21's (``postfix.configure``), under
``/tmp/mta-own/postfix``, final destination of ``linden.test``.

Its transport map sends ``maple.test`` back to its own listener (the next hop greets with the
instance's own name: "loops back to myself"), ``oak.test`` to the scripted remote server by a
client that requires TLS (``smtp_tls_security_level = encrypt``; the server offers none),
``willow.test`` to a next hop whose name has no DNS record, ``rowan.test`` to the scripted
server (authentication required, a malformed address) and ``sender.test`` to the capture
server. A local alias delivers to a mailbox file; a message that already carries that
address's ``Delivered-To:`` is a forwarding loop to local(8). The cases are ``own_postfix``
in ``own_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import postfix
from .cases import OWN_CASES, load, script_replies
from .destination import Destination
from .rows import Row

MTA = "own_postfix"
ROOT = Path("/tmp/mta-own/postfix")
PORT = 7225  # 2525 + the helper's test port offset (4700)
LOCAL = "linden.test"
TLS_SERVICE = "tlsonly unix  -       -       n       -       -       smtp\n" \
    "  -o smtp_tls_security_level=encrypt\n"  # fmt: skip


def _configure(destination: Destination) -> None:
    host = destination.host
    routes = {
        "sender.test": f"smtp:[{host}]:{destination.capture_port}",
        "rowan.test": f"smtp:[{host}]:{destination.port}",
        "maple.test": f"smtp:[{host}]:{PORT}",  # itself
        "oak.test": f"tlsonly:[{host}]:{destination.port}",
        "willow.test": "smtp:[mx1.cedar-nx.test]",  # a next hop's name with no record
    }
    mailbox = ROOT / "mail/vera.lang"
    aliases = {"vera.lang": str(mailbox), "postmaster": "root"}
    master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES + TLS_SERVICE
    postfix.configure(ROOT, LOCAL, master, routes, aliases)
    mailbox.parent.mkdir()
    mailbox.parent.chmod(0o1777)


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, OWN_CASES)
    script_replies(destination, built)
    _configure(destination)
    return postfix.run(ROOT, PORT, destination, built, out, MTA)
