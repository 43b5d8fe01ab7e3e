"""Exim's notices of what Cyrus IMAP's lmtpd answers, run for real (round 50): Debian's Exim,
unpacked and run as round 21's (``exim.configure``, ``exim.run``) under
``/tmp/mta-cyrus/exim``.

Its manual routes send ``lime.test`` over LMTP (``protocol = lmtp``) to Cyrus's first lmtpd,
``teak.test`` to its second (``cyrus.py``), ``walnut.test`` to a port where nothing listens
(lmtpd down), and ``sender.test`` (the notices, Cyrus's rejection notice and vacation reply)
to the capture server. Cyrus submits its own mail to this daemon. The cases are
``cyrus_exim`` in ``cyrus_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import cyrus, exim
from .cases import CYRUS_CASES, load
from .destination import Destination
from .exim import Route
from .rows import Row

MTA = "cyrus_exim"
ROOT = cyrus.ROOT / "exim"
PORT = 7562  # 2562 + the helper's test port offset (5000)
CYRUS_PORTS = (7575, 7573, 7574)  # imapd, the first lmtpd, the second
LOCAL = "laurel.test"
FIRST, SECOND, DOWN = "lime.test", "teak.test", "walnut.test"
LMTP = ("protocol = lmtp",)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = f"{exim.unpack(ROOT)}; cyrus-imapd {cyrus.unpack()}"
    built = load(MTA, CYRUS_CASES)
    _, lmtp, lmtp_second = CYRUS_PORTS
    routes = [
        Route("capture", "sender.test", destination.capture_port),
        Route("cyrus", FIRST, lmtp, LMTP),
        Route("cyrus_second", SECOND, lmtp_second, LMTP),
        Route("down", DOWN, destination.refused_port, (*LMTP, "connect_timeout = 5s")),
    ]
    config = exim.configure(ROOT, LOCAL, PORT, routes, routers="", transports="")
    addresses = [f"ola.brekke@{FIRST}", f"ola.brekke@{SECOND}"]
    with cyrus.running(cyrus.ROOT / MTA, f"mx.{FIRST}", CYRUS_PORTS, PORT, addresses):
        return exim.run(ROOT, PORT, config, destination, built, out, MTA, version)
