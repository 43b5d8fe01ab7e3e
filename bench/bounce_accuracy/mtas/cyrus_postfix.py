"""Postfix's notices of what Cyrus IMAP's lmtpd answers, run for real (round 50): an instance of
the system's Postfix configured as round 21's (``postfix.configure``: its ``master.cf`` with an
``lmtp`` service, ``main.cf``) under ``/tmp/mta-cyrus/postfix``.

It delivers ``yew.test`` over LMTP to Cyrus's first lmtpd, ``sloe.test`` to its second
(``cyrus.py``), ``medlar.test`` over LMTP to a port where nothing listens (lmtpd down), and
``sender.test`` (the notices, Cyrus's rejection notice and vacation reply) to the capture
server. Cyrus submits its own mail to this instance's listener. The cases are
``cyrus_postfix`` in ``cyrus_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import cyrus, postfix
from .cases import CYRUS_CASES, load
from .destination import Destination
from .packages import installed_version
from .rows import Row

MTA = "cyrus_postfix"
ROOT = cyrus.ROOT / "postfix"
PORT = 7560  # 2560 + the helper's test port offset (5000)
CYRUS_PORTS = (7572, 7570, 7571)  # imapd, the first lmtpd, the second
LOCAL = "myrtle.test"  # the instance's own domain (nothing is sent to it)
FIRST, SECOND, DOWN = "yew.test", "sloe.test", "medlar.test"
TIMEOUT = 150.0

LMTP_SERVICE = "lmtp      unix  -       -       n       -       -       lmtp\n"


def generate(out: Path, destination: Destination) -> list[Row]:
    version = f"{installed_version('postfix')}; cyrus-imapd {cyrus.unpack()}"
    built = load(MTA, CYRUS_CASES)
    _, lmtp, lmtp_second = CYRUS_PORTS
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        FIRST: f"lmtp:inet:127.0.0.1:{lmtp}",
        SECOND: f"lmtp:inet:127.0.0.1:{lmtp_second}",
        DOWN: f"lmtp:inet:127.0.0.1:{destination.refused_port}",
    }
    master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES + LMTP_SERVICE
    postfix.configure(ROOT, LOCAL, master, routes, {"postmaster": "root"})
    addresses = [f"ola.brekke@{FIRST}", f"ola.brekke@{SECOND}"]
    folder = cyrus.ROOT / MTA
    with cyrus.running(folder, f"mx.{FIRST}", CYRUS_PORTS, PORT, addresses):
        return postfix.run(ROOT, PORT, destination, built, out, MTA, version=version,
                           timeout=TIMEOUT)  # fmt: skip
