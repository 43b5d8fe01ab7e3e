"""Courier's notices of DNS failures of the recipient's domain (round 44): round 21c's Courier
1.0.16, unpacked under ``/tmp/mta-dns/courier`` and run as ``courier.py`` runs it (in a
namespace of its own, its ``/etc``, ``/var`` and ``/run`` each with a writable layer under
``/tmp/mta-dns/courier/run``), the ``/etc`` layer holding a private ``resolv.conf`` that names
the harness's DNS server on an address of its own (:data:`ADDRESS`).

Its ``esmtproutes`` send only ``sender.test`` (the notices) to the capture server; every other
domain goes by DNS, answered from ``dns_opensmtpd.TABLE``. Delay warnings after a minute, a
queue lifetime of three, retries every 15 s (``courier.SETTINGS``). The cases are
``dns_courier`` in ``dns_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import courier
from .cases import DNS_CASES, load
from .destination import Destination
from .dns_opensmtpd import TABLE
from .dnsserver import resolv_conf, serving
from .packages import extract
from .rows import Row

MTA = "dns_courier"
ROOT = Path("/tmp/mta-dns/courier")
RUN = ROOT / "run"
ADDRESS = "127.0.0.43"  # the DNS server's, an address of its own (so the modules can run at once)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(courier.PACKAGES, ROOT)["courier-mta"]
    built = load(MTA, DNS_CASES)
    courier.configure(destination, ROOT, RUN, {"sender.test": destination.capture_port})
    resolv_conf(RUN / "etc/resolv.conf", ADDRESS)  # the /etc layer's, over the system's
    with serving(TABLE, ADDRESS):
        return courier.run(destination, built, out, MTA, version, ROOT, RUN)
