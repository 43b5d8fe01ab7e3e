"""Sendmail's notices of what MIMEDefang, run for real as a milter, answered (round 57): the
receiving side of ``mimedefang_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail
8.17 as the sending MTA (``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``),
a folder of its own, ``/tmp/mta-r57/sendmail-run``, final destination of ``hazel-s.test``: each
recipient domain goes to the receiving instance's listener (``extra`` routes of its mailer
table) from :data:`mimedefang_postfix.CLIENT` (``CLIENT_OPTIONS``), ``sender.test`` to the
capture server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases
are ``mimedefang_sendmail`` in ``mimedefang_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import mimedefang_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "mimedefang_sendmail"
RUN = mimedefang_postfix.ROOT / "sendmail-run"
PORT = 8292  # 2542 + the helper's test port offset (5750)
LOCAL = "hazel-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(mimedefang_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
