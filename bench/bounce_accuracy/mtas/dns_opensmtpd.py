"""OpenSMTPD's notices of DNS failures of the recipient's domain (round 44): round 21b's
OpenSMTPD 6.8, unpacked under ``/tmp/mta-dns/opensmtpd`` and run as ``opensmtpd.py`` runs it
(in the foreground, in a mount and UTS namespace of its own with a private ``/var`` and its two
users), that namespace given a private ``/etc/resolv.conf`` naming the harness's DNS server
(``dnsserver.py``) on an address of this round's own, :data:`ADDRESS`.

Its rules send only ``sender.test`` (the notices) to the capture server; every other domain
goes by DNS, answered from :data:`TABLE` (round 41's kinds of failure under names of this
round's own). Delay warnings after a minute, a queue lifetime of three, ``smtpctl schedule
all`` every few seconds (as ``opensmtpd.py``). The cases are ``dns_opensmtpd`` in
``dns_cases.yaml``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from . import opensmtpd
from .cases import DNS_CASES, collect, load, submit
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, alongside, isolated, listening
from .packages import extract
from .rows import Row

MTA = "dns_opensmtpd"
ROOT = Path("/tmp/mta-dns/opensmtpd")
RUN = ROOT / "run"
PORT = 7040  # 2540 + the helper's test port offset (4500)
LOCAL = "agrimony.test"
# round 41's server answers on 127.0.0.41; this round's own, so both can run at once
ADDRESS = "127.0.0.44"

# Each case's domain and the DNS server's answer (names carry no word of the failure). A name
# not in the table is NXDOMAIN (``sloe.test``, dma's case).
TABLE = Table(
    {
        "gorse.test": Name((("MX", "0 ."),)),  # a null MX (RFC 7505)
        "sedum.test": Name((("MX", "10 mx1.sedum.test"),)),  # mx1.sedum.test: NXDOMAIN
        "betony.test": Name(),  # the name exists, no MX, no A, no AAAA (NODATA)
        "comfrey.test": Name(rcode=2),  # SERVFAIL on every query
        "woad.test": Name(silent=True),  # no answer at all
        "madder.test": Name((("CNAME", "mx.madder.test"),)),  # a CNAME loop
        "mx.madder.test": Name((("CNAME", "madder.test"),)),
    }
)

CONF = """\
queue ttl {lifetime}
bounce warn-interval {warn}
table aliases file:{run}/aliases
listen on 127.0.0.1 port {port} hostname mx.{local}
action "local" mbox alias <aliases>
action "capture" relay host smtp://{host}:{capture}
action "dns" relay
match from any for domain "{local}" action "local"
match from local for domain "sender.test" action "capture"
match from local for any action "dns"
"""


def _configure(destination: Destination) -> None:
    conf = CONF.format(
        lifetime=opensmtpd.LIFETIME, warn=opensmtpd.WARN_AFTER, run=RUN, port=PORT,
        local=LOCAL, host=destination.host, capture=destination.capture_port,
    )  # fmt: skip
    opensmtpd.write_run(RUN, {"postmaster": "root"}, conf)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(opensmtpd.PACKAGES, ROOT)["opensmtpd"]
    built = load(MTA, DNS_CASES)
    _configure(destination)
    resolv = resolv_conf(RUN / "resolv.conf", ADDRESS)
    mounts = [*opensmtpd.mounts(RUN), Bind(resolv, "/etc/resolv.conf")]
    smtpd = [str(ROOT / "usr/sbin/smtpd"), "-d", "-f", str(RUN / "smtpd.conf")]
    command = isolated(smtpd, mounts, f"mx.{LOCAL}")
    schedule = partial(opensmtpd.schedule_all, smtpctl=ROOT / "usr/sbin/smtpctl")
    with (
        serving(TABLE, ADDRESS),
        listening(command, PORT, "smtpd", RUN / "smtpd.log") as daemon,
        alongside(partial(schedule, daemon)),
    ):
        submit(destination.host, PORT, built)
        return collect(destination, built, out, MTA, version, opensmtpd.TIMEOUT)
