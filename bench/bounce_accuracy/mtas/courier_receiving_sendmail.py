"""Sendmail's notices of a receiving Courier's own checks (round 66): the receiving Courier of
``courier_receiving_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17 as the
sending MTA (``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``), a folder of
its own, ``/tmp/r66-courier/sendmail-run``, final destination of ``medlar-m-r66.test``, its SMTP
client bound to its own loopback address: each recipient domain goes to its Courier daemon
(``extra`` routes of its mailer table), ``sender.test`` and the sender domains of the DNS and
SPF cases to the capture server. Delay warning after 1 minute, queue lifetime 3 minutes (round
21b's). The cases are ``courier_receiving_sendmail`` in ``courier_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import courier_receiving_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "courier_receiving_sendmail"
RUN = courier_receiving_postfix.ROOT / "sendmail-run"
PORT = 18827  # 2527 + the helper's test port offset (16300)
LOCAL = "medlar-m-r66.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        courier_receiving_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
