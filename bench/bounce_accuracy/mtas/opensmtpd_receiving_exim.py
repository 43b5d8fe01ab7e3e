"""Exim's notices of a receiving OpenSMTPD's own rules and filters (round 65): the receiving
OpenSMTPD of ``opensmtpd_receiving_postfix`` with Debian's Exim, unpacked and run as round 21's
(``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under ``/tmp/r65-opensmtpd/exim``,
as the sending MTA, its transports bound to its own loopback address: each recipient domain
goes to its listener, ``sender.test`` to the capture server. Delay warning after 20 s, retries
given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are
``opensmtpd_receiving_exim`` in ``opensmtpd_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, opensmtpd_receiving_postfix
from .cases import load
from .destination import Destination
from .rows import Row

MTA = "opensmtpd_receiving_exim"
ROOT = opensmtpd_receiving_postfix.ROOT / "exim"
PORT = 18726  # 2526 + the helper's test port offset (16200)
LOCAL = "quince-x-r65.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    receiving = opensmtpd_receiving_postfix
    built = load(MTA, receiving.CASES)
    version = exim.unpack(ROOT)
    config = exim.configure_sending(ROOT, LOCAL, PORT, destination, receiving.routes_to(),
                                    relay="opensmtpd", client=receiving.CLIENTS[MTA])  # fmt: skip
    with receiving.receiving(built, destination, out, MTA) as behind:
        return exim.run(ROOT, PORT, config, destination, built, out, MTA,
                        f"exim4-{version}; {behind}")  # fmt: skip
