"""Exim's notices of content-filter milters behind a receiving Sendmail (round 70): the
receiving Sendmail daemons and filters of ``sendmail_milters_postfix`` (its ``RECEIVER``) with
Debian's Exim, unpacked and run as round 21's (``exim.behind``) under
``/tmp/r70-sendmail-milters/exim`` as the sending MTA, its transports bound to its own loopback
address: each recipient domain goes to its daemon, ``sender.test`` to the capture server. Delay
warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are
``sendmail_milters_exim`` in ``sendmail_milters_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, sendmail_milters_postfix
from .destination import Destination
from .rows import Row

MTA = "sendmail_milters_exim"
ROOT = sendmail_milters_postfix.ROOT / "exim"
PORT = 18576  # 2526 + the helper's test port offset (16050)
LOCAL = "quince-x-r70.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(sendmail_milters_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
