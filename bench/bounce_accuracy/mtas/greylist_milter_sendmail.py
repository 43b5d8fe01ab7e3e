"""Sendmail's notices of what milter-greylist, run for real, answered (round 79): the receiving
side of ``greylist_milter_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17
as the sending MTA (``sendmail.behind``), a folder of its own,
``/tmp/r79-greylist/sendmail-run``, final destination of ``rowan-s-r79.test``: each recipient
domain goes to the receiving instance's listener from :data:`greylist_milter_postfix.CLIENT`,
``sender.test`` to the capture server. Delay warning after 1 minute, queue lifetime 3 minutes
(round 21b's). The cases are ``greylist_milter_sendmail`` in ``greylist_milter_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import greylist_milter_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "greylist_milter_sendmail"
RUN = greylist_milter_postfix.ROOT / "sendmail-run"
PORT = 19852  # round 79's ports
LOCAL = "rowan-s-r79.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(greylist_milter_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out,
                           destination)  # fmt: skip
