"""Exim's notices of a receiving Exim's content scanning (round 68): the receiving Exim 4.96
of ``exim_content_postfix`` (its ``RECEIVER``: spamd, clamd, its MIME ACL, sa-exim) with a
second Debian Exim, unpacked and run as round 21's (``exim.behind``: ``exim.unpack``,
``exim.configure_sending``, ``exim.run``) under ``/tmp/r68-content/exim``, as the sending MTA:
each recipient domain goes to the receiving Exim, ``sender.test`` to the capture server. Delay
warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are
``exim_content_exim`` in ``exim_content_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, exim_content_postfix
from .destination import Destination
from .rows import Row

MTA = "exim_content_exim"
ROOT = exim_content_postfix.ROOT / "exim"
PORT = 18926  # 2526 + the helper's test port offset (16400)
LOCAL = "quince-x.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(exim_content_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
