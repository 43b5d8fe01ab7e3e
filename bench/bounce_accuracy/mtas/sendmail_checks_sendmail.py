"""Sendmail's notices of a receiving Sendmail's own checks (round 63): the four receiving
Sendmail daemons of ``sendmail_checks_postfix`` (its ``RECEIVER``) with round 21b's unpacked
Sendmail 8.17 as the sending MTA too (``sendmail.behind``: ``sendmail.configure_sending``,
``sendmail.run``), a folder of its own, ``/tmp/mta-r63-sendmail/sendmail-run``, final
destination of ``quetsche-m-r63.test``, its SMTP client bound to its own loopback address: each
recipient domain goes to its daemon (``extra`` routes of its mailer table), ``sender.test`` and
the two sender domains of the DNS cases to the capture server. Delay warning after 1 minute,
queue lifetime 3 minutes (round 21b's). The cases are ``sendmail_checks_sendmail`` in
``sendmail_checks_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail, sendmail_checks_postfix
from .destination import Destination
from .rows import Row

MTA = "sendmail_checks_sendmail"
RUN = sendmail_checks_postfix.ROOT / "sendmail-run"
PORT = 18927  # 2527 + the helper's test port offset (16400)
LOCAL = "quetsche-m-r63.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        sendmail_checks_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
