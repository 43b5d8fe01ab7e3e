"""Exim's notices of qpsmtpd's own replies (round 56): the receiving qpsmtpd of
``qpsmtpd_postfix`` (its ``RECEIVER``: four ``qpsmtpd-forkserver``, each with its plugins) with
Debian's Exim, unpacked and run as round 21's (``exim.behind``: ``exim.unpack``,
``exim.configure_sending``, ``exim.run``) under ``/tmp/mta-r56-qpsmtpd/exim``, as the sending
MTA: each recipient domain goes to its qpsmtpd, ``sender.test`` to the capture server. Delay
warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are
``qpsmtpd_exim`` in ``qpsmtpd_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, qpsmtpd_postfix
from .destination import Destination
from .rows import Row

MTA = "qpsmtpd_exim"
ROOT = qpsmtpd_postfix.ROOT / "exim"
PORT = 8126  # 2526 + the helper's test port offset (5600)
LOCAL = "feijoa-q.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(qpsmtpd_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
