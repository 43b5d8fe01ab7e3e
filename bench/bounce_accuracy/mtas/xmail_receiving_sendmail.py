"""Sendmail's notices of a receiving XMail's own checks (round 76): the receiving XMail daemons
of ``xmail_receiving_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17 as the
sending MTA (``sendmail.behind``), a folder of its own, ``/tmp/r76-xmail/sendmail-run``, final
destination of ``medlar-m-r76.test``, its SMTP client bound to its own loopback address: each
recipient domain goes to its XMail daemon (``extra`` routes of its mailer table), ``sender.test``
and the sender domain of the DNS case to the capture server. Delay warning after 1 minute,
queue lifetime 3 minutes (round 21b's). The cases are ``xmail_receiving_sendmail`` in
``older_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail, xmail_receiving_postfix
from .destination import Destination
from .rows import Row

MTA = "xmail_receiving_sendmail"
RUN = xmail_receiving_postfix.ROOT / "sendmail-run"
PORT = 19777  # round 76's block (19775-19799)
LOCAL = "medlar-m-r76.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(
        xmail_receiving_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination
    )
