"""Postfix meeting a next hop that breaks the protocol (round 40): round 40's instance
(``own_postfix``) with ``birch-imap.test`` routed to a server that greets as IMAP does and
``quince.test`` to one that closes the connection at the end of DATA (``broken.Broken``),
until the queue lifetime runs out. The cases are ``own_protocol_postfix`` in
``own_cases.yaml``."""

from __future__ import annotations

from pathlib import Path

from . import postfix
from .broken import Broken
from .cases import OWN_CASES, load
from .destination import Destination
from .rows import Row

MTA = "own_protocol_postfix"
ROOT = Path("/tmp/mta-own/postfix-protocol")
PORT = 7231  # 2531 + the helper's test port offset (4700)
LOCAL = "linden.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, OWN_CASES)
    with Broken() as broken:
        host = destination.host
        routes = {
            "sender.test": f"smtp:[{host}]:{destination.capture_port}",
            "birch-imap.test": f"smtp:[{host}]:{broken.garbage_port}",
            "quince.test": f"smtp:[{host}]:{broken.lost_port}",
        }
        master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES
        postfix.configure(ROOT, LOCAL, master, routes, {"postmaster": "root"})
        return postfix.run(ROOT, PORT, destination, built, out, MTA)
