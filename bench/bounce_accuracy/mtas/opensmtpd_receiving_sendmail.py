"""Sendmail's notices of a receiving OpenSMTPD's own rules and filters (round 65): the receiving
OpenSMTPD of ``opensmtpd_receiving_postfix`` (its ``RECEIVER``) with round 21b's unpacked
Sendmail 8.17 as the sending MTA (``sendmail.behind``: ``sendmail.configure_sending``,
``sendmail.run``), a folder of its own, ``/tmp/r65-opensmtpd/sendmail-run``, final destination
of ``quince-m-r65.test``, its SMTP client bound to its own loopback address: each recipient
domain goes to its listener (``extra`` routes of its mailer table), ``sender.test`` to the
capture server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases
are ``opensmtpd_receiving_sendmail`` in ``opensmtpd_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import opensmtpd_receiving_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "opensmtpd_receiving_sendmail"
RUN = opensmtpd_receiving_postfix.ROOT / "sendmail-run"
PORT = 18727  # 2527 + the helper's test port offset (16200)
LOCAL = "quince-m-r65.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        opensmtpd_receiving_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
