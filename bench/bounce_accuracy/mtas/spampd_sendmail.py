"""Sendmail's notices of what spampd, run for real, answered (round 79): the receiving
side of ``spampd_postfix`` (its ``RECEIVER``) with round 21b's unpacked Sendmail 8.17
as the sending MTA (``sendmail.behind``), a folder of its own,
``/tmp/r79-spampd/sendmail-run``, final destination of ``elm-s-r79.test``: each recipient
domain goes to the spampd instance from :data:`spampd_postfix.CLIENT`,
``sender.test`` to the capture server. Delay warning after 1 minute, queue lifetime 3 minutes
(round 21b's). The cases are ``spampd_sendmail`` in ``greylist_milter_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail, spampd_postfix
from .destination import Destination
from .rows import Row

MTA = "spampd_sendmail"
RUN = spampd_postfix.ROOT / "sendmail-run"
PORT = 19862  # round 79's ports
LOCAL = "elm-s-r79.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(spampd_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out,
                           destination)  # fmt: skip
