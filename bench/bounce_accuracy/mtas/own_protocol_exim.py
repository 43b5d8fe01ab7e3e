"""Exim meeting a next hop that breaks the protocol (round 40): Exim run as round 40's
``own_exim`` with ``birch-imap.test`` routed to a server that greets as IMAP does and
``quince.test`` to one that closes the connection at the end of DATA (``broken.Broken``),
until its retry rule gives up. The cases are ``own_protocol_exim`` in ``own_cases.yaml``."""

from __future__ import annotations

from pathlib import Path

from . import exim
from .broken import Broken
from .cases import OWN_CASES, load
from .destination import Destination
from .exim import Route
from .rows import Row

MTA = "own_protocol_exim"
ROOT = Path("/tmp/mta-own/exim-protocol")
PORT = 7233  # 2533 + the helper's test port offset (4700)
LOCAL = "poplar.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    version = exim.unpack(ROOT)
    built = load(MTA, OWN_CASES)
    with Broken() as broken:
        routes = [
            Route("capture", "sender.test", destination.capture_port),
            Route("imap", "birch-imap.test", broken.garbage_port, ("command_timeout = 5s",)),
            Route("lost", "quince.test", broken.lost_port, ("command_timeout = 5s",)),
        ]
        config = exim.configure_empty(ROOT, LOCAL, PORT, routes)
        return exim.run(ROOT, PORT, config, destination, built, out, MTA, version)
