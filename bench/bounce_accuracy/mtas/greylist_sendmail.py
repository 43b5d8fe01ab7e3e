"""Sendmail's notices of what rspamd's greylisting, run for real, answered (round 57): the
receiving side of ``greylist_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail
8.17 as the sending MTA (``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``),
a folder of its own, ``/tmp/mta-r57g/sendmail-run``, final destination of ``hickory-s.test``:
each recipient domain goes to the receiving instance's listener (``extra`` routes of its mailer
table) from :data:`greylist_postfix.CLIENT` (``CLIENT_OPTIONS``), ``sender.test`` to the capture
server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases are
``greylist_sendmail`` in ``mimedefang_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import greylist_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "greylist_sendmail"
RUN = greylist_postfix.ROOT / "sendmail-run"
PORT = 8326  # the helper's test port offset's series (5750)
LOCAL = "hickory-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(greylist_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
