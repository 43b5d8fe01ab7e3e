"""Sendmail's success notices (round 37): the return receipts Sendmail 8.17 sends when the
sender asked for them (RFC 3461 ``NOTIFY=SUCCESS``), "relayed" to a server that does not speak
DSN and "expanded" for an alias of several addresses; automatic mail a bounce address receives
that is no failure.

``sendmail.py``'s setup (Debian's sendmail-bin unpacked under ``/tmp/mta-sendmail``, never
installed, its ``.cf`` built by m4) run with a queue and configuration of its own under
``/tmp/mta-sendmail-auto`` on its own port, with an alias of two remote addresses. The cases
are ``sendmail_auto`` in ``auto_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail
from .destination import Destination
from .rows import Row

MTA = "sendmail_auto"
RUN = Path("/tmp/mta-sendmail-auto/run")
PORT = 6449  # 2549 + the helper's test port offset (3900)
ALIASES = {"council": f"erik.lind@{sendmail.REMOTE}, fiona.park@{sendmail.REMOTE}"}


def generate(out: Path, destination: Destination) -> list[Row]:
    """``sendmail.generate`` with this module's cases, queue, port and aliases (its module
    settings are read when called, and put back after)."""
    saved = (sendmail.MTA, sendmail.RUN, sendmail.PORT, sendmail.ALIASES)
    sendmail.MTA, sendmail.RUN, sendmail.PORT = MTA, RUN, PORT
    sendmail.ALIASES = {**sendmail.ALIASES, **ALIASES}
    try:
        return sendmail.generate(out, destination)
    finally:
        sendmail.MTA, sendmail.RUN, sendmail.PORT, sendmail.ALIASES = saved
