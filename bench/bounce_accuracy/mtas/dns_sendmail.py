"""Sendmail's notices of DNS failures of the recipient's domain (round 41): round 21b's unpacked
Sendmail run as round 21b's (``sendmail.configure``, ``sendmail.run``) with a folder of its own,
``/tmp/mta-dns/sendmail-run``, final destination of ``sedge.test``, its namespace given a
private ``/etc/resolv.conf`` that names the harness's DNS server (``dnsserver.py``).

Its mailer table routes only ``sender.test`` (the capture server, round 21b's); every other
domain goes by DNS, answered from ``dns_postfix.TABLE``. The cases are ``dns_sendmail`` in
``dns_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail
from .cases import DNS_CASES, load
from .destination import Destination
from .dns_postfix import TABLE
from .dnsserver import resolv_conf, serving
from .host import Bind
from .rows import Row

MTA = "dns_sendmail"
RUN = Path("/tmp/mta-dns/sendmail-run")
PORT = 7429  # 2529 + the helper's test port offset (4900)
LOCAL = "sedge.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    version = sendmail.unpacked()
    built = load(MTA, DNS_CASES)
    sendmail.configure(destination, RUN, LOCAL, PORT, {"postmaster": "root"}, sendmail.BESIDE)
    resolv = resolv_conf(RUN / "resolv.conf")
    with serving(TABLE):
        mounts = [Bind(resolv, "/etc/resolv.conf")]
        return sendmail.run(destination, built, out, MTA, version, RUN, LOCAL, PORT, mounts)
