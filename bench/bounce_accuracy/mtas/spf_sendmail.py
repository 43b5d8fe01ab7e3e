"""Sendmail's notices of SPF temporary and permanent errors (round 53): the receiving side of
``spf_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17 as the sending MTA
(``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``), a folder of its own,
``/tmp/mta-spf/sendmail-run``, final destination of ``tayberry-s.test``: each recipient domain
goes to the receiving instance's listener (``extra`` routes of its mailer table) from
:data:`spf_postfix.CLIENT` (``CLIENT_OPTIONS``), the senders' domains to the capture server.
Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases are
``spf_sendmail`` in ``spf_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail, spf_postfix
from .destination import Destination
from .rows import Row

MTA = "spf_sendmail"
RUN = spf_postfix.ROOT / "sendmail-run"
PORT = 7832  # 2532 + the helper's test port offset (5300)
LOCAL = "tayberry-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(spf_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
