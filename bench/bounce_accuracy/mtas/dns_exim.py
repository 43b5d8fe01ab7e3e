"""Exim's notices of DNS failures of the recipient's domain (round 41): Debian's Exim unpacked
and run as round 21's (``exim.unpack``, ``exim.configure``, ``exim.run``) under
``/tmp/mta-dns/exim``, final destination of ``teasel.test``, its namespace given a private
``/etc/resolv.conf`` that names the harness's DNS server (``dnsserver.py``).

``sender.test`` is routed to the capture server; every other domain goes by Exim's
``dnslookup`` router, answered from ``dns_postfix.TABLE`` (the same domains and answers as
Postfix's cases). The cases are ``dns_exim`` in ``dns_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim
from .cases import DNS_CASES, load
from .destination import Destination
from .dns_postfix import TABLE
from .dnsserver import resolv_conf, serving
from .exim import Route
from .host import Bind
from .rows import Row

MTA = "dns_exim"
ROOT = Path("/tmp/mta-dns/exim")
PORT = 7427  # 2527 + the helper's test port offset (4900)
LOCAL = "teasel.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    version = exim.unpack(ROOT)
    built = load(MTA, DNS_CASES)
    routes = [Route("capture", "sender.test", destination.capture_port)]
    config = exim.configure_empty(ROOT, LOCAL, PORT, routes)
    resolv = resolv_conf(ROOT / "resolv.conf")
    with serving(TABLE):
        mounts = [Bind(resolv, "/etc/resolv.conf")]
        return exim.run(ROOT, PORT, config, destination, built, out, MTA, version, mounts)
