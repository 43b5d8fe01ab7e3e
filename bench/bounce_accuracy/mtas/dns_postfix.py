"""Postfix's notices of DNS failures of the recipient's domain (round 41): an instance of the
system's Postfix configured as round 21's (``postfix.configure``), under
``/tmp/mta-dns/postfix``, run in a mount namespace of its own where a private
``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``, on 127.0.0.41:53).

Only ``sender.test`` (the capture server) is in its transport map; the DNS cases' domains go by
DNS, answered from :data:`TABLE`: a null MX, an MX host that does not exist, a name with no
record (NODATA), SERVFAIL on every query, no answer at all, a CNAME loop. The cases are
``dns_postfix`` in ``dns_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import postfix
from .cases import DNS_CASES, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind
from .rows import Row

MTA = "dns_postfix"
ROOT = Path("/tmp/mta-dns/postfix")
PORT = 7425  # 2525 + the helper's test port offset (4900)
LOCAL = "thistle.test"

# Each case's domain and what the DNS server answers for it (names carry no word of the failure).
TABLE = Table(
    {
        "hawthorn.test": Name((("MX", "0 ."),)),  # a null MX (RFC 7505)
        "juniper.test": Name((("MX", "10 mx1.juniper.test"),)),  # mx1.juniper.test: NXDOMAIN
        "laurel.test": Name(),  # the name exists, no MX, no A, no AAAA (NODATA)
        "myrtle.test": Name(rcode=2),  # SERVFAIL on every query
        "sorrel.test": Name(silent=True),  # no answer at all
        "cypress.test": Name((("CNAME", "mx.cypress.test"),)),  # a CNAME loop
        "mx.cypress.test": Name((("CNAME", "cypress.test"),)),
    }
)


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, DNS_CASES)
    host = destination.host
    routes = {"sender.test": f"smtp:[{host}]:{destination.capture_port}"}
    aliases = {"postmaster": "root"}
    master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES
    postfix.configure(ROOT, LOCAL, master, routes, aliases)
    resolv = resolv_conf(ROOT / "resolv.conf")
    with serving(TABLE):
        mounts = [Bind(resolv, "/etc/resolv.conf")]
        return postfix.run(ROOT, PORT, destination, built, out, MTA, mounts=mounts)
