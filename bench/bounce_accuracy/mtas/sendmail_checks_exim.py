"""Exim's notices of a receiving Sendmail's own checks (round 63): the receiving Sendmail
daemons of ``sendmail_checks_postfix`` (its ``RECEIVER``) with Debian's Exim, unpacked and run
as round 21's (``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under
``/tmp/mta-r63-sendmail/exim``, as the sending MTA, its transports bound to its own loopback
address: each recipient domain goes to its daemon, ``sender.test`` and the two sender domains of
the DNS cases to the capture server. Delay warning after 20 s, retries given up after 60 s
(``exim.MAIN``, ``exim.RETRY``). The cases are ``sendmail_checks_exim`` in
``sendmail_checks_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, sendmail_checks_postfix
from .destination import Destination
from .rows import Row

MTA = "sendmail_checks_exim"
ROOT = sendmail_checks_postfix.ROOT / "exim"
PORT = 18926  # 2526 + the helper's test port offset (16400)
LOCAL = "quetsche-x-r63.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(sendmail_checks_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
