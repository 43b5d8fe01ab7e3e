"""Haraka's notices of DNS failures of the recipient's domain (round 44): round 33's Haraka
3.3.4 from npm, installed under ``/tmp/mta-dns/haraka/pkg`` and configured as ``haraka.py``
configures it (``haraka.configure``: its outbound queue retrying temporary failures every 5 s
four times, no delay warnings), run in a mount namespace of its own where a private
``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``) on an address of its
own, :data:`ADDRESS` (Node's resolver reads that file).

Its ``get_mx`` hook answers only for ``sender.test`` (the notices, to the capture server);
every other domain goes by DNS, answered from ``dns_opensmtpd.TABLE``. The cases are
``dns_haraka`` in ``dns_cases.yaml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import haraka
from .cases import DNS_CASES, collect, load, submit
from .destination import Destination
from .dns_opensmtpd import TABLE
from .dnsserver import resolv_conf, serving
from .host import ENV, Bind, isolated, listening
from .rows import Row

MTA = "dns_haraka"
ROOT = Path("/tmp/mta-dns/haraka")
PKG = ROOT / "pkg"
RUN = ROOT / "run"
PORT = 7042  # 2542 + the helper's test port offset (4500)
ADDRESS = "127.0.0.46"  # the DNS server's, an address of its own (so the modules can run at once)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = haraka.install(PKG)
    built = load(MTA, DNS_CASES)
    route = {"exchange": destination.host, "port": destination.capture_port, "priority": 10}
    haraka.configure({"sender.test": route}, PKG, RUN, PORT)
    resolv = resolv_conf(ROOT / "resolv.conf", ADDRESS)
    node = ["node", str(PKG / "node_modules/Haraka/bin/haraka"), "-c", str(RUN)]
    command = isolated(node, [Bind(resolv, "/etc/resolv.conf")])
    log = RUN / "haraka.log"
    try:
        with (
            serving(TABLE, ADDRESS),
            listening(command, PORT, "Haraka", log, env={**ENV, "HOME": str(RUN)}),
        ):
            submit(destination.host, PORT, built)
            return collect(destination, built, out, MTA, version, haraka.TIMEOUT)
    finally:
        if log.exists():
            shutil.copy(log, out.parent / f"{MTA}.log")
