"""Exim's notices of what content filters run for real as milters answered (round 55): the
receiving side of ``milters_postfix`` (its ``RECEIVER``: clamav-milter with clamd,
spamass-milter with spamd, behind a receiving Postfix) with Debian's Exim, unpacked and run as
round 21's (``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under
``/tmp/mta-r55/exim``, as the sending MTA: each recipient domain goes to the receiving
instance's listener from :data:`milters_postfix.CLIENT` (the transport's ``interface``),
``sender.test`` to the capture server. Delay warning after 20 s, retries given up after 60 s
(``exim.MAIN``, ``exim.RETRY``). The cases are ``milters_exim`` in ``milter_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, milters_postfix
from .destination import Destination
from .rows import Row

MTA = "milters_exim"
ROOT = milters_postfix.ROOT / "exim"
PORT = 8041  # 2541 + the helper's test port offset (5500)
LOCAL = "hawthorn-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(milters_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
