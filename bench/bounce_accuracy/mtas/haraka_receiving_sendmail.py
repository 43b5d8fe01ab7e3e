"""Sendmail's notices of a receiving Haraka's own plugins (round 64): the receiving Haraka
instances of ``haraka_receiving_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail
8.17 as the sending MTA (``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``),
a folder of its own, ``/tmp/r64-haraka/sendmail-run``, final destination of
``pruneau-m-r64.test``, its SMTP client bound to its own loopback address: each recipient domain
goes to its instance (``extra`` routes of its mailer table), ``sender.test`` and the three
sender domains of the DNS cases to the capture server. Delay warning after 1 minute, queue
lifetime 3 minutes (round 21b's). The cases are ``haraka_receiving_sendmail`` in
``haraka_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import haraka_receiving_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "haraka_receiving_sendmail"
RUN = haraka_receiving_postfix.ROOT / "sendmail-run"
PORT = 18627  # 2527 + the helper's test port offset (16100)
LOCAL = "pruneau-m-r64.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        haraka_receiving_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
