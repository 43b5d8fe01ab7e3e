"""Sendmail's notices of a receiving ZMailer's own checks (round 76): the receiving ZMailer
smtpserver of ``zmailer_receiving_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail
8.17 as the sending MTA (``sendmail.behind``), a folder of its own,
``/tmp/r76-zmailer/sendmail-run``, final destination of ``medlar-zm-r76.test``, its SMTP client
bound to its own loopback address: each recipient domain goes to the smtpserver (``extra``
routes of its mailer table), ``sender.test`` and the sender domains of the DNS cases to the
capture server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases
are ``zmailer_receiving_sendmail`` in ``older_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail, zmailer_receiving_postfix
from .destination import Destination
from .rows import Row

MTA = "zmailer_receiving_sendmail"
RUN = zmailer_receiving_postfix.ROOT / "sendmail-run"
PORT = 19788  # round 76's block (19775-19799)
LOCAL = "medlar-zm-r76.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        zmailer_receiving_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
