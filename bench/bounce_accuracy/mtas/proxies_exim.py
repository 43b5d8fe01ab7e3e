"""Exim's notices of what SMTP content-filter proxies run for real answered (round 67): the
receiving side of ``proxies_postfix`` (its ``RECEIVER``: clamsmtpd with clamd, proxsmtpd with
filters of ours, in front of a receiving Postfix) with Debian's Exim, unpacked and run as round
21's (``exim.behind``: ``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under
``/tmp/r67-proxies/exim``, as the sending MTA: each recipient domain goes to its proxy from this
MTA's address in :data:`proxies_postfix.CLIENTS` (the transport's ``interface``),
``sender.test`` to the capture server. Delay warning after 20 s, retries given up after 60 s
(``exim.MAIN``, ``exim.RETRY``). The cases are ``proxies_exim`` in ``proxies_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, proxies_postfix
from .destination import Destination
from .rows import Row

MTA = "proxies_exim"
ROOT = proxies_postfix.ROOT / "exim"
PORT = 19001  # 2701 + the helper's test port offset (16300)
LOCAL = "damson-x-r67.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(proxies_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
