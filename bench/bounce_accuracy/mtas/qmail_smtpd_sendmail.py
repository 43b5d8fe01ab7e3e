"""Sendmail's notices of qmail-smtpd's own replies (round 53): the receiving qmail of
``qmail_smtpd_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17 as the
sending MTA (``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``), a folder of
its own, ``/tmp/mta-qmail-smtpd/sendmail-run``, final destination of ``sapote-s.test``: each
recipient domain goes to its qmail-smtpd (``extra`` routes of its mailer table), ``sender.test``
to the capture server (qmail's own notices come back through this Sendmail, which relays for
127.0.0.1). Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases are
``qmail_smtpd_sendmail`` in ``qmail_smtpd_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import qmail_smtpd_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "qmail_smtpd_sendmail"
RUN = qmail_smtpd_postfix.ROOT / "sendmail-run"
PORT = 7827  # 2527 + the helper's test port offset (5300)
LOCAL = "sapote-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(qmail_smtpd_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
