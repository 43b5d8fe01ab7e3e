"""Exim's notices of what policy services and milters answered, run for real (round 45): the
receiving side of ``policy_postfix`` (the DNS server, postgrey, postfix-policyd-spf-python,
policyd-weight, OpenDKIM, OpenDMARC behind a receiving Postfix) with Debian's Exim, unpacked
and run as round 21's (``exim.unpack``, ``exim.configure_sending``, ``exim.run``) under
``/tmp/mta-policy/exim``, as the sending MTA: each recipient domain goes to the receiving
instance's listener from :data:`policy_postfix.CLIENT` (the transport's ``interface``),
``sender.test`` (and ``news.sender.test``) to the capture server. Delay warning after 20 s,
retries given up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are ``policy_exim`` in
``policy_cases.yaml``; its report cases name addresses of their own, which the DNS records then
name.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, policy_postfix
from .cases import POLICY_CASES, load
from .destination import Destination
from .rows import Row

MTA = "policy_exim"
ROOT = policy_postfix.ROOT / "exim"
PORT = 7250  # 2550 + the helper's test port offset (4700)
LOCAL = "sorb.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    sent, reports = policy_postfix.split(load(MTA, POLICY_CASES))
    versions = policy_postfix.prepare(destination)
    version = exim.unpack(ROOT)
    config = exim.configure_sending(ROOT, LOCAL, PORT, destination, policy_postfix.routes_to(),
                                    relay="policy",
                                    captured={"capture_soft": policy_postfix.SOFT_DOMAIN},
                                    client=policy_postfix.CLIENT)  # fmt: skip
    with policy_postfix.receiving(out, MTA, reports):
        rows = exim.run(ROOT, PORT, config, destination, sent, out, MTA, version)
        return rows + policy_postfix.reported(destination, reports, out, MTA, versions)
