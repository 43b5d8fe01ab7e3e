"""Exim's notices of what MIMEDefang, run for real as a milter, answered (round 57): the
receiving side of ``mimedefang_postfix`` (its ``RECEIVER``: MIMEDefang 3.3 behind a receiving
Postfix) with Debian's Exim, unpacked and run as round 21's (``exim.behind``: ``exim.unpack``,
``exim.configure_sending``, ``exim.run``) under ``/tmp/mta-r57/exim``, as the sending MTA: each
recipient domain goes to the receiving instance's listener from
:data:`mimedefang_postfix.CLIENT` (the transport's ``interface``), ``sender.test`` to the
capture server. Delay warning after 20 s, retries given up after 60 s (``exim.MAIN``,
``exim.RETRY``). The cases are ``mimedefang_exim`` in ``mimedefang_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, mimedefang_postfix
from .destination import Destination
from .rows import Row

MTA = "mimedefang_exim"
ROOT = mimedefang_postfix.ROOT / "exim"
PORT = 8291  # 2541 + the helper's test port offset (5750)
LOCAL = "hazel-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(mimedefang_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
