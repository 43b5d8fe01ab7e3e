"""Exim's notices of a receiving OpenSMTPD's filter programs (round 69): the receiving
OpenSMTPD, rspamd and DNS server of ``opensmtpd_filters_postfix`` (its ``RECEIVER``) with
Debian's Exim, unpacked and run as round 21's (``exim.behind``: ``exim.unpack``,
``exim.configure_sending``, ``exim.run``) under ``/tmp/r69-opensmtpd/exim``, as the sending
MTA, its transports bound to its own loopback address. Delay warning after 20 s, retries given
up after 60 s (``exim.MAIN``, ``exim.RETRY``). The cases are ``opensmtpd_filters_exim`` in
``opensmtpd_filters_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, opensmtpd_filters_postfix
from .destination import Destination
from .rows import Row

MTA = "opensmtpd_filters_exim"
ROOT = opensmtpd_filters_postfix.ROOT / "exim"
PORT = 18476  # 2526 + the helper's test port offset (15950)
LOCAL = "quince-x-r69.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    return exim.behind(opensmtpd_filters_postfix.RECEIVER, MTA, ROOT, LOCAL, PORT, out, destination)
