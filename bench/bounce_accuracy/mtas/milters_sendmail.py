"""Sendmail's notices of what content filters run for real as milters answered (round 55): the
receiving side of ``milters_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17
as the sending MTA (``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``), a
folder of its own, ``/tmp/mta-r55/sendmail-run``, final destination of ``hawthorn-s.test``: each
recipient domain goes to the receiving instance's listener (``extra`` routes of its mailer
table) from :data:`milters_postfix.CLIENT` (``CLIENT_OPTIONS``), ``sender.test`` to the capture
server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases are
``milters_sendmail`` in ``milter_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import milters_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "milters_sendmail"
RUN = milters_postfix.ROOT / "sendmail-run"
PORT = 8042  # 2542 + the helper's test port offset (5500)
LOCAL = "hawthorn-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(milters_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
