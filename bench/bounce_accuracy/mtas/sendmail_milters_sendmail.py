"""Sendmail's notices of content-filter milters behind a receiving Sendmail (round 70): the
receiving Sendmail daemons and filters of ``sendmail_milters_postfix`` (its ``RECEIVER``) with
round 21b's unpacked Sendmail 8.17 as the sending MTA too (``sendmail.behind``), a folder of
its own, ``/tmp/r70-sendmail-milters/sendmail-run``, final destination of
``quince-m-r70.test``, its SMTP client bound to its own loopback address: each recipient domain
goes to its daemon, ``sender.test`` to the capture server. Delay warning after 1 minute, queue
lifetime 3 minutes (round 21b's). The cases are ``sendmail_milters_sendmail`` in
``sendmail_milters_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail, sendmail_milters_postfix
from .destination import Destination
from .rows import Row

MTA = "sendmail_milters_sendmail"
RUN = sendmail_milters_postfix.ROOT / "sendmail-run"
PORT = 18577  # 2527 + the helper's test port offset (16050)
LOCAL = "quince-m-r70.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        sendmail_milters_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
