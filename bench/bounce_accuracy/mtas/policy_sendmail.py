"""Sendmail's notices of what policy services and milters answered, run for real (round 45):
the receiving side of ``policy_postfix`` with round 21b's unpacked Sendmail 8.17 as the sending
MTA (``sendmail.configure_sending``, ``sendmail.run``), a folder of its own,
``/tmp/mta-policy/sendmail-run``, final destination of ``rowan-s.test``: each recipient domain
goes to the receiving instance's listener (``extra`` routes of its mailer table) from
:data:`policy_postfix.CLIENT` (``CLIENT_OPTIONS``), ``sender.test`` and ``news.sender.test`` to
the capture server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's): the
greylisted message that passes after 35 s passes before any warning, so that case is not made
here. The cases are ``policy_sendmail`` in ``policy_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import policy_postfix, sendmail
from .cases import POLICY_CASES, load
from .destination import Destination
from .rows import Row

MTA = "policy_sendmail"
RUN = policy_postfix.ROOT / "sendmail-run"
PORT = 7251  # 2551 + the helper's test port offset (4700)
LOCAL = "rowan-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    sent, reports = policy_postfix.split(load(MTA, POLICY_CASES))
    versions = policy_postfix.prepare(destination)
    version = sendmail.unpacked()
    sendmail.configure_sending(RUN, LOCAL, PORT, destination, policy_postfix.routes_to(),
                               captured=(policy_postfix.SOFT_DOMAIN,),
                               client=policy_postfix.CLIENT)  # fmt: skip
    with policy_postfix.receiving(out, MTA, reports):
        rows = sendmail.run(destination, sent, out, MTA, version, RUN, LOCAL, PORT)
        return rows + policy_postfix.reported(destination, reports, out, MTA, versions)
