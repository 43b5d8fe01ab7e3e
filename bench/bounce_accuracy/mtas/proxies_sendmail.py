"""Sendmail's notices of what SMTP content-filter proxies run for real answered (round 67): the
receiving side of ``proxies_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17
as the sending MTA (``sendmail.behind``: ``sendmail.configure_sending``, ``sendmail.run``), a
folder of its own, ``/tmp/r67-proxies/sendmail-run``, final destination of
``damson-s-r67.test``: each recipient domain goes to its proxy (``extra`` routes of its mailer
table) from this MTA's address in :data:`proxies_postfix.CLIENTS` (``CLIENT_OPTIONS``),
``sender.test`` to the capture server. Delay warning after 1 minute, queue lifetime 3 minutes
(round 21b's). The cases are ``proxies_sendmail`` in ``proxies_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import proxies_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "proxies_sendmail"
RUN = proxies_postfix.ROOT / "sendmail-run"
PORT = 19002  # 2702 + the helper's test port offset (16300)
LOCAL = "damson-s-r67.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(proxies_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
