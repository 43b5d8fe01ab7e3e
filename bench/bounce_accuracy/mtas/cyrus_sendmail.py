"""Sendmail's notices of what Cyrus IMAP's lmtpd answers, run for real (round 50): Debian's
sendmail-bin, unpacked and run as round 21b's (``sendmail.configure``, ``sendmail.run``) with a
folder of its own, ``/tmp/mta-cyrus/sendmail-run``.

Its mailer table sends ``holm.test`` to Cyrus's first lmtpd, ``gorse.test`` to its second
(``cyrus.py``) and ``broom.test`` to a port where nothing listens (lmtpd down), each through a
mailer of its own that speaks LMTP (``F=z``) over TCP; ``sender.test`` (the notices, Cyrus's
rejection notice and vacation reply) goes to the capture server. Cyrus submits its own mail to
this daemon. The cases are ``cyrus_sendmail`` in ``cyrus_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import cyrus, sendmail
from .cases import CYRUS_CASES, load
from .destination import Destination
from .rows import Row

MTA = "cyrus_sendmail"
RUN = cyrus.ROOT / "sendmail-run"
PORT = 7564  # 2564 + the helper's test port offset (5000)
CYRUS_PORTS = (7578, 7576, 7577)  # imapd, the first lmtpd, the second
LOCAL = "olive.test"
FIRST, SECOND, DOWN = "holm.test", "gorse.test", "broom.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    version = f"{sendmail.unpacked()}; cyrus-imapd {cyrus.unpack()}"
    built = load(MTA, CYRUS_CASES)
    _, lmtp, lmtp_second = CYRUS_PORTS
    lmtp_routes = {
        FIRST: (destination.host, lmtp),
        SECOND: (destination.host, lmtp_second),
        DOWN: (destination.host, destination.refused_port),
    }
    aliases = {"postmaster": "root"}
    sendmail.configure(destination, RUN, LOCAL, PORT, aliases, sendmail.BESIDE, lmtp=lmtp_routes)
    addresses = [f"ola.brekke@{FIRST}", f"ola.brekke@{SECOND}"]
    with cyrus.running(cyrus.ROOT / MTA, f"mx.{FIRST}", CYRUS_PORTS, PORT, addresses):
        return sendmail.run(destination, built, out, MTA, version, RUN, LOCAL, PORT)
