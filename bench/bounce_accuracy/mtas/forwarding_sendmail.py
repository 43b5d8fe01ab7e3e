"""Sendmail's notices of forwarding failures made by a receiving Postfix and Sendmail (round 78):
the receiving side of ``forwarding_postfix`` (its ``RECEIVER``) with round 21b's unpacked
Sendmail 8.17 as the sending MTA (``sendmail.behind``), a folder of its own,
``/tmp/r78-forwarding/sendmail-run``, final destination of ``medlar-m-r78.test``, its SMTP
client bound to its own loopback address: each recipient domain goes to the receiving Postfix
or Sendmail (``extra`` routes of its mailer table), ``sender.test`` to the capture server; the
receiving Postfix relays the forwarded mail back through it (from 127.0.0.1, which Sendmail
lets relay). Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases
are ``forwarding_sendmail`` in ``forwarding_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import forwarding_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "forwarding_sendmail"
RUN = forwarding_postfix.ROOT / "sendmail-run"
PORT = 19827  # round 78's block (19825-19849)
LOCAL = "medlar-m-r78.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(forwarding_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
