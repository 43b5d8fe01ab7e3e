"""Exim's side of round 78's SRS forward (round 81): Debian's Exim 4.96, unpacked and run
as round 21's (``exim.behind``) under ``/tmp/r81-srs/exim``, final destination of
``medlar-x-r81.test``, sends to the forwarding Postfix with postsrsd of
``forwarding_srs_postfix`` (its ``RECEIVER``), its SMTP client bound to its own
loopback address. The forwarder's notice goes back through postsrsd's reverse table to the
sender, whatever MTA sent. The cases are ``forwarding_srs_exim`` in ``forwarding_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, forwarding_srs_postfix
from .destination import Destination
from .rows import Row

MTA = "forwarding_srs_exim"
ROOT = Path("/tmp/r81-srs/exim")
PORT = 19875  # round 81's block (19875-19899)
LOCAL = "medlar-x-r81.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(forwarding_srs_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
