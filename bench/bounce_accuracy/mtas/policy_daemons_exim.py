"""Exim's notices of what more Postfix policy daemons answered, run for real (round 61): the
receiving side of ``policy_daemons_postfix`` (its ``RECEIVER``: sqlgrey, gross, postfwd and
policyd-rate-limit behind a receiving Postfix, the DNS server) with Debian's Exim, unpacked and
run as round 21's (``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``)
under ``/tmp/mta-r61/exim``, as the sending MTA: each recipient domain goes to the receiving
instance's listener from :data:`policy_daemons_postfix.CLIENT` (the transport's ``interface``),
``sender.test`` to the capture server. Delay warning after 20 s, retries given up after 60 s
(``exim.MAIN``, ``exim.RETRY``). The cases are ``policy_daemons_exim`` in
``policy_daemons_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, policy_daemons_postfix
from .destination import Destination
from .rows import Row

MTA = "policy_daemons_exim"
ROOT = policy_daemons_postfix.ROOT / "exim"
PORT = 19162  # 3062 + the helper's test port offset (16100)
LOCAL = "laurel-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(policy_daemons_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
