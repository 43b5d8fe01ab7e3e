"""Exim's notices of qmail-smtpd's own replies (round 53): the receiving qmail of
``qmail_smtpd_postfix`` (its ``RECEIVER``: its ``qmail-smtpd`` twice, one with a failing queue,
and ``qmail-send`` for its own domain) with Debian's Exim, unpacked and run as round 21's
(``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under
``/tmp/mta-qmail-smtpd/exim``, as the sending MTA: each recipient domain goes to its
qmail-smtpd, ``sender.test`` to the capture server (qmail's own notices come back through this
Exim). Delay warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``).
The cases are ``qmail_smtpd_exim`` in ``qmail_smtpd_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, qmail_smtpd_postfix
from .destination import Destination
from .rows import Row

MTA = "qmail_smtpd_exim"
ROOT = qmail_smtpd_postfix.ROOT / "exim"
PORT = 7826  # 2526 + the helper's test port offset (5300)
LOCAL = "feijoa-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(qmail_smtpd_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
