"""Sendmail's notices of qpsmtpd's own replies (round 56): the receiving qpsmtpd of
``qpsmtpd_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17 as the sending MTA
(``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``), a folder of its own,
``/tmp/mta-r56-qpsmtpd/sendmail-run``, final destination of ``sapote-q.test``: each recipient
domain goes to its qpsmtpd (``extra`` routes of its mailer table), ``sender.test`` to the
capture server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The
cases are ``qpsmtpd_sendmail`` in ``qpsmtpd_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import qpsmtpd_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "qpsmtpd_sendmail"
RUN = qpsmtpd_postfix.ROOT / "sendmail-run"
PORT = 8127  # 2527 + the helper's test port offset (5600)
LOCAL = "sapote-q.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(qpsmtpd_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
