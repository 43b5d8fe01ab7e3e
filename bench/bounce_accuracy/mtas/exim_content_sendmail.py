"""Sendmail's notices of a receiving Exim's content scanning (round 68): the receiving Exim
4.96 of ``exim_content_postfix`` (its ``RECEIVER``: spamd, clamd, its MIME ACL, sa-exim) with
round 21b's unpacked Sendmail 8.17 as the sending MTA (``sendmail.behind``:
``sendmail.configure_sending``, ``sendmail.run``), a folder of its own,
``/tmp/r68-content/sendmail-run``, final destination of ``quince-s.test``: every recipient
domain goes to the receiving Exim (one ``extra`` route of its mailer table, ``.e68.test``, for
all: ``exim_content_postfix.sendmail_routes``), ``sender.test`` to the capture server. Delay
warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases are
``exim_content_sendmail`` in ``exim_content_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim_content_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "exim_content_sendmail"
RUN = exim_content_postfix.ROOT / "sendmail-run"
PORT = 18927  # 2527 + the helper's test port offset (16400)
LOCAL = "quince-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(exim_content_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
