"""Exim's notices of a receiving Haraka's own plugins (round 64): the receiving Haraka
instances of ``haraka_receiving_postfix`` with Debian's Exim, unpacked and run as round 21's
(``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under ``/tmp/r64-haraka/exim``, as the
sending MTA, its transports bound to its own loopback address: each recipient domain goes to
its instance, ``sender.test`` and the three sender domains of the DNS cases to the capture
server. Delay warning after 20 s, retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``).
The cases are ``haraka_receiving_exim`` in ``haraka_receiving_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, haraka_receiving_postfix
from .cases import load
from .destination import Destination
from .rows import Row

MTA = "haraka_receiving_exim"
ROOT = haraka_receiving_postfix.ROOT / "exim"
PORT = 18626  # 2526 + the helper's test port offset (16100)
LOCAL = "pruneau-x-r64.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    checks = haraka_receiving_postfix
    built = load(MTA, checks.CASES)
    version = exim.unpack(ROOT)
    captured = {f"sender{n}": domain for n, domain in enumerate(checks.SENDER_DOMAINS)}
    config = exim.configure_sending(ROOT, LOCAL, PORT, destination, checks.routes_to(),
                                    relay="haraka", captured=captured,
                                    client=checks.CLIENTS[MTA])  # fmt: skip
    with checks.receiving(built, out, MTA) as receiving:
        return exim.run(ROOT, PORT, config, destination, built, out, MTA,
                        f"exim4-{version}; {receiving}")  # fmt: skip
