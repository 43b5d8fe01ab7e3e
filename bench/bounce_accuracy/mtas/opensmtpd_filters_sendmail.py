"""Sendmail's notices of a receiving OpenSMTPD's filter programs (round 69): the receiving
OpenSMTPD, rspamd and DNS server of ``opensmtpd_filters_postfix`` (its ``RECEIVER``) with
round 21b's unpacked Sendmail 8.17 as the sending MTA (``sendmail.behind``:
``sendmail.configure_sending``, ``sendmail.run``), a folder of its own,
``/tmp/r69-opensmtpd/sendmail-run``, its SMTP client bound to its own loopback address. Delay
warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases are
``opensmtpd_filters_sendmail`` in ``opensmtpd_filters_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import opensmtpd_filters_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "opensmtpd_filters_sendmail"
RUN = opensmtpd_filters_postfix.ROOT / "sendmail-run"
PORT = 18477  # 2527 + the helper's test port offset (15950)
LOCAL = "quince-m-r69.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        opensmtpd_filters_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
