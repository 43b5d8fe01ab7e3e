"""Exim's notices of what MIMEDefang, run for real as a milter, answered (round 57): the
receiving side of ``mimedefang_postfix`` (MIMEDefang 3.3 behind a receiving
Postfix) with Debian's Exim, unpacked and run as round 21's
(``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under ``/tmp/mta-r57/exim``, as the
sending MTA: each recipient domain goes to the receiving instance's listener from
:data:`mimedefang_postfix.CLIENT` (the transport's ``interface``), ``sender.test`` to the capture
server. Delay warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``).
The cases are ``mimedefang_exim`` in ``mimedefang_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, mimedefang_postfix
from .cases import MIMEDEFANG_CASES, load
from .destination import Destination
from .rows import Row

MTA = "mimedefang_exim"
ROOT = mimedefang_postfix.ROOT / "exim"
PORT = 8291  # 2541 + the helper's test port offset (5750)
LOCAL = "hazel-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, MIMEDEFANG_CASES)
    versions = mimedefang_postfix.prepare()
    version = exim.unpack(ROOT)
    config = exim.configure_sending(ROOT, LOCAL, PORT, destination,
                                    mimedefang_postfix.routes_to(), relay="milter",
                                    client=mimedefang_postfix.CLIENT)  # fmt: skip
    with mimedefang_postfix.receiving(out, MTA):
        return exim.run(ROOT, PORT, config, destination, built, out, MTA,
                        f"exim4-{version}; {mimedefang_postfix.version(versions)}")  # fmt: skip
