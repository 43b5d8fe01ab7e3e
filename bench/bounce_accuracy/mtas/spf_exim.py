"""Exim's notices of SPF temporary and permanent errors (round 53): the receiving side of
``spf_postfix`` (its ``RECEIVER``: the DNS server, policyd-spf behind a receiving Postfix) with
Debian's Exim, unpacked and run as round 21's (``exim.behind``: ``exim.unpack``,
``exim.configure_sending``, ``exim.run``) under ``/tmp/mta-spf/exim``, as the sending MTA: each
recipient domain goes to the receiving instance's listener from :data:`spf_postfix.CLIENT` (the
transport's ``interface``), the senders' domains to the capture server. Delay warning after 20
s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are ``spf_exim`` in
``spf_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, spf_postfix
from .destination import Destination
from .rows import Row

MTA = "spf_exim"
ROOT = spf_postfix.ROOT / "exim"
PORT = 7831  # 2531 + the helper's test port offset (5300)
LOCAL = "tayberry-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(spf_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
