"""Exim's notices of what rspamd's greylisting, run for real, answered (round 57): the receiving
side of ``greylist_postfix`` (its ``RECEIVER``: rspamd 3.4 with a private Redis behind a
receiving Postfix) with Debian's Exim, unpacked and run as round 21's (``exim.behind``:
``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under ``/tmp/mta-r57g/exim``, as the
sending MTA: each recipient domain goes to the receiving instance's listener from
:data:`greylist_postfix.CLIENT` (the transport's ``interface``), ``sender.test`` to the capture
server. Delay warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``).
The cases are ``greylist_exim`` in ``mimedefang_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, greylist_postfix
from .destination import Destination
from .rows import Row

MTA = "greylist_exim"
ROOT = greylist_postfix.ROOT / "exim"
PORT = 8325  # the helper's test port offset's series (5750)
LOCAL = "hickory-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(greylist_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
