"""Exim's notices of a receiving ZMailer's own checks (round 76): the receiving ZMailer
smtpserver of ``zmailer_receiving_postfix`` (its ``RECEIVER``) with Debian's Exim, unpacked and
run as round 21's (``exim.behind``) under ``/tmp/r76-zmailer/exim``, as the sending MTA, its
transports bound to its own loopback address: each recipient domain goes to the smtpserver,
``sender.test`` and the sender domains of the DNS cases to the capture server. Delay warning
after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are
``zmailer_receiving_exim`` in ``older_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, zmailer_receiving_postfix
from .destination import Destination
from .rows import Row

MTA = "zmailer_receiving_exim"
ROOT = zmailer_receiving_postfix.ROOT / "exim"
PORT = 19787  # round 76's block (19775-19799)
LOCAL = "medlar-zx-r76.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(zmailer_receiving_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
