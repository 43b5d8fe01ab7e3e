"""Sendmail's notices of what more Postfix policy daemons answered, run for real (round 61): the
receiving side of ``policy_daemons_postfix`` (its ``RECEIVER``) with round 21b's unpacked
Sendmail 8.17 as the sending MTA (``sendmail.behind``: ``sendmail.configure_sending``,
``sendmail.run``), a folder of its own, ``/tmp/mta-r61/sendmail-run``, final destination of
``laurel-s.test``: each recipient domain goes to the receiving instance's listener (``extra``
routes of its mailer table) from :data:`policy_daemons_postfix.CLIENT` (``CLIENT_OPTIONS``),
``sender.test`` to the capture server. Delay warning after 1 minute, queue lifetime 3 minutes
(round 21b's; sqlgrey's 5 minutes outlast it). The cases are ``policy_daemons_sendmail`` in
``policy_daemons_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import policy_daemons_postfix, sendmail
from .destination import Destination
from .rows import Row

MTA = "policy_daemons_sendmail"
RUN = policy_daemons_postfix.ROOT / "sendmail-run"
PORT = 19163  # 3063 + the helper's test port offset (16100)
LOCAL = "laurel-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return sendmail.behind(policy_daemons_postfix.RECEIVER, MTA, RUN, LOCAL, PORT, out, destination)
