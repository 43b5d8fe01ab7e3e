"""Sendmail's side of round 78's SRS forward (round 81): round 21b's unpacked Sendmail 8.17
(``sendmail.behind``) under ``/tmp/r81-srs/sendmail-run``, final destination of
``medlar-m-r81.test``, sends to the forwarding Postfix with postsrsd of
``forwarding_srs_postfix`` (its ``RECEIVER``), its SMTP client bound to its own
loopback address. The forwarder's notice goes back through postsrsd's reverse table to the
sender, whatever MTA sent. The cases are ``forwarding_srs_sendmail`` in ``forwarding_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import forwarding_srs_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "forwarding_srs_sendmail"
RUN = Path("/tmp/r81-srs/sendmail-run")
PORT = 19876  # round 81's block (19875-19899)
LOCAL = "medlar-m-r81.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(forwarding_srs_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
