"""Sendmail's notices of what a receiving Postfix's own restrictions and limits answered
(round 60): the receiving side of ``restrictions_postfix`` with round 21b's unpacked Sendmail
8.17 as the sending MTA (``sendmail.configure``, ``sendmail.run``), a folder of its own,
``/tmp/mta-r60/sendmail-run``, final destination of ``tarragon-s.test``: each recipient domain
goes to the receiving instance's listener (``extra`` routes of its mailer table) from
:data:`restrictions_postfix.CLIENT` (``CLIENT_OPTIONS``), ``sender.test`` to the capture
server. Delay warning after 1 minute, queue lifetime 3 minutes (round 21b's). The cases are
``restrictions_sendmail`` in ``restriction_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import restrictions_postfix, sendmail
from .cases import RESTRICTION_CASES, load, script_replies
from .destination import Destination
from .rows import Row

MTA = "restrictions_sendmail"
RUN = restrictions_postfix.ROOT / "sendmail-run"
PORT = 18642  # 2642 + the helper's test port offset (16000)
LOCAL = "tarragon-s.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, RESTRICTION_CASES)
    script_replies(destination, built)
    restrictions_postfix.prepare(destination)
    version = sendmail.unpacked()
    # A mailer per listener, and only for the cases' domains: Sendmail 8.17 allows 25
    # mailers (MAXMAILERS), its own and round 21b's among them.
    used = {address.split("@")[1] for case in built for address in case.recipients}
    routes = restrictions_postfix.routes_to().items()
    extra = {domain: ("127.0.0.1", port) for domain, port in routes if domain in used}
    source = f"CLIENT_OPTIONS(`Family=inet, Addr={restrictions_postfix.CLIENT}')dnl\n"
    sendmail.configure(destination, RUN, LOCAL, PORT, {"postmaster": "root"},
                       sendmail.BESIDE + source, extra)  # fmt: skip
    with restrictions_postfix.receiving(out, MTA):
        return sendmail.run(destination, built, out, MTA,
                            f"sendmail-{version}; {restrictions_postfix.version()}",
                            RUN, LOCAL, PORT)  # fmt: skip
