"""Policy services and milters run for real behind a receiving Postfix (round 45), and the
notices the harness's Postfix writes of their answers, and the feedback reports they send.

Round 23 could only script these programs' words (``filters_postfix.py``): they decide by DNS.
Here they run from Debian 12's packages (``packages.extract`` into ``/tmp/mta-policy/pkg``,
never installed) in a mount namespace of their own where a private ``/etc/resolv.conf`` names
the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`, an address of this round's
own), which serves the SPF, DMARC, DKIM key and report records and the DNSBL zones
(:data:`TABLE`).

Two instances of the system's Postfix (``postfix.configure``):

* the sending one, under ``/tmp/mta-policy/send``, takes the cases on :data:`PORT` and sends
  each recipient domain to a listener of the receiving one from the address
  :data:`CLIENT` (``smtp_bind_address``: no ignore list of the filters skips it);
* the receiving one, under ``/tmp/mta-policy/recv`` (final destination of ``quince.test``),
  applies one check per recipient domain (restriction classes): postgrey with a delay the
  sender's queue lifetime never meets (``bramble.test``) and one it meets (``clover.test``),
  postfix-policyd-spf-python (``dogwood.test``; a fail and a soft fail, both rejected:
  ``Mail_From_reject = Softfail``), Postfix's own ``reject_rbl_client`` against a zone we serve
  (``elderberry.test``), policyd-weight (``foxglove.test``; its DNSBL zones served here), and,
  on listeners of their own, OpenDKIM verifying a signature that does not verify
  (``heather.test``, ``On-BadSignature reject``, ``SendReports``: the signature asks for
  reports, ``r=y``, and ``_report._domainkey`` names the address) and OpenDMARC
  (``ivy.test``, ``p=reject`` with a ``ruf=`` address, ``FailureReports``). Mail that passes
  is discarded. The filters' reports are handed to the receiving instance's ``sendmail``,
  which sends them to the capture server.

A report is a case with no recipient in ``policy_cases.yaml``: its ``sender`` is the address
the report goes to, and it is collected after the others.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import POLICY_CASES, Case, collect, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace, listening, write_file
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "policy_postfix"
ROOT = Path("/tmp/mta-policy")
PACKAGES_ROOT = ROOT / "pkg"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 7241  # 2541 + the helper's test port offset (4700): the sending instance
POLICY_PORT = 7242  # the receiving instance's listener with the policy checks
DKIM_PORT = 7243  # its listener with OpenDKIM
DMARC_PORT = 7244  # its listener with OpenDMARC
OPENDKIM_PORT = 7245
OPENDMARC_PORT = 7246
GREY_LONG_PORT = 7247
GREY_SHORT_PORT = 7248
WEIGHT_PORT = 7249
DNS_ADDRESS = "127.0.0.45"  # the DNS server of this round (round 41's is 127.0.0.41)
CLIENT = "127.0.0.46"  # the sending instance's address, as the filters see it
SENDING = "medlar.test"
RECEIVING = "quince.test"
GREY_LONG_DELAY = 3600  # seconds: never met within the sender's 70 s queue lifetime
GREY_SHORT_DELAY = 35  # met after the delay warning (20 s)
RBL_ZONE = "dnsbl.gorse.test"
SOFT_DOMAIN = "news.sender.test"  # the sender domain whose SPF record ends in ~all
# The report cases (their senders are the addresses the DNS records name) and the package
# that writes each (its row's version).
REPORTERS = {"dmarc-failure-report": "opendmarc", "dkim-failure-report": "opendkim"}

PACKAGES = [
    "postgrey", "libnet-server-perl", "libnetaddr-ip-perl", "libberkeleydb-perl",
    "libnet-dns-perl", "libdigest-hmac-perl", "libnet-ip-perl", "libio-socket-inet6-perl",
    "libsocket6-perl", "libio-multiplex-perl", "policyd-weight",
    "postfix-policyd-spf-python", "python3-spf-engine", "python3-spf", "python3-authres",
    "python3-dns", "python3-dnspython", "python3-pkg-resources",
    "opendmarc", "libopendmarc2", "libmilter1.0.1", "libspf2-2",
    "opendkim", "libopendkim11", "libopendbx1", "librbl1", "libvbr2", "libunbound8",
    "libmemcached11", "libhashkit2", "liblua5.3-0", "libldap-2.5-0", "libsasl2-2",
    "libevent-2.1-7",
]  # fmt: skip

# The public half of a key whose private half is not kept: the DKIM case's signature is made
# up (its body hash and signature match nothing), so the key only has to parse.
DKIM_KEY = (
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC50jnR2PqvsoK9Zuain0wvTJHSBsDQDY8/iClDnhUFDgGr+wXJ"
    "AexDkXUikYYqnkOujQrTAajwcPvBeidyt8qx1eo7TY0djpFean2nzUeZ3T2zIYJXvld6nCfvapYBxSwGk/V0EF+X/"
    "ExZ42BPQT4esn+nrGNPq8GRW52m9V5okwIDAQAB"
)
LISTED = "46.0.0.127"  # CLIENT reversed, as DNSBLs are asked


def table(ruf: str, dkim_reports: str) -> Table:
    """What the DNS server answers: the sender's domain's SPF record allows only a
    documentation address (:data:`CLIENT` fails), its DMARC record rejects and asks for failure
    reports at ``ruf``, its DKIM key, and its DKIM report record names ``dkim_reports`` (an
    address of the domain); the DNSBL zones list :data:`CLIENT`."""
    return Table(
        {
            "sender.test": Name((("TXT", "v=spf1 ip4:192.0.2.1 -all"),)),
            "_dmarc.sender.test": Name((("TXT", f"v=DMARC1; p=reject; ruf=mailto:{ruf}; fo=1"),)),
            "news._domainkey.sender.test": Name((("TXT", f"v=DKIM1; k=rsa; p={DKIM_KEY}"),)),
            "_report._domainkey.sender.test": Name(
                (("TXT", f"ra={dkim_reports.split('@')[0]}; rp=100; rr=all"),)
            ),
            SOFT_DOMAIN: Name((("TXT", "v=spf1 ip4:192.0.2.1 ~all"),)),
            # Postfix's reject_rbl_client zone: listed, with a reason
            f"{LISTED}.{RBL_ZONE}": Name(
                (
                    ("A", "127.0.0.2"),
                    ("TXT", f"{CLIENT} is listed; see http://{RBL_ZONE}/q/{CLIENT}"),
                )
            ),
            # one of policyd-weight's default zones lists the client
            f"{LISTED}.sbl-xbl.spamhaus.org": Name(
                (("A", "127.0.0.2"), ("TXT", f"https://www.spamhaus.org/query/ip/{CLIENT}"))
            ),
        }
    )


RECV_MASTER = """\
127.0.0.1:{policy} inet n - n - - smtpd
127.0.0.1:{dkim} inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:{opendkim}
127.0.0.1:{dmarc} inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:{opendmarc}
  -o smtpd_recipient_restrictions=$spf_result_restrictions
policyd-spf unix - n n - 0 spawn user=nobody argv={spf} {root}/policyd-spf.conf
policyd-spf-ar unix - n n - 0 spawn user=nobody argv={spf} {root}/policyd-spf-ar.conf
"""

RECV_MAIN = """
mynetworks = 127.0.0.1/32
relay_domains = {domains}
smtpd_restriction_classes = greylong, greyshort, spfcheck, rblcheck, weightcheck
greylong = check_policy_service inet:127.0.0.1:{grey_long}
greyshort = check_policy_service inet:127.0.0.1:{grey_short}
spfcheck = check_policy_service unix:private/policyd-spf
rblcheck = reject_rbl_client {zone}
weightcheck = check_policy_service inet:127.0.0.1:{weight}
smtpd_recipient_restrictions = reject_unauth_destination,
  check_recipient_access texthash:{etc}/classes
spf_result_restrictions = reject_unauth_destination,
  check_policy_service unix:private/policyd-spf-ar
policyd-spf_time_limit = 3600
policyd-spf-ar_time_limit = 3600
milter_default_action = tempfail
local_transport = discard:
"""

CLASSES = {
    "bramble.test": "greylong",
    "clover.test": "greyshort",
    "dogwood.test": "spfcheck",
    "elderberry.test": "rblcheck",
    "foxglove.test": "weightcheck",
}
MILTER_DOMAINS = {"heather.test": DKIM_PORT, "ivy.test": DMARC_PORT}

SPF_CONF = """\
debugLevel = 1
TestOnly = 1
HELO_reject = Fail
Mail_From_reject = Softfail
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.99/32
"""

# Before OpenDMARC, an SPF check that only records its result (an Authentication-Results header
# OpenDMARC trusts): OpenDMARC's own SPF check (libspf2) passes every loopback client.
SPF_AR_CONF = """\
debugLevel = 1
TestOnly = 1
HELO_reject = False
Mail_From_reject = False
PermError_reject = False
TempError_Defer = False
skip_addresses = 192.0.2.99/32
Header_Type = AR
Authserv_Id = mx.{local}
"""

# OpenDKIM resolves with libunbound, which will not ask a server on a loopback address and
# answers NXDOMAIN for every name under test. (RFC 6761) itself, unless told otherwise.
UNBOUND_CONF = """\
server:
  do-not-query-localhost: no
  local-zone: "test." nodefault
"""

# policyd-weight logs to syslog only; with no /dev/log here, by UDP (to nothing).
WEIGHT_CONF = """\
$USER = 'nobody';
$GROUP = 'nogroup';
$TCP_PORT = {port};
$BIND_ADDRESS = '127.0.0.1';
$PIDFILE = '{root}/policyd-weight.pid';
$LOCKPATH = '{root}/polw/';
$SPATH = $LOCKPATH.'/polw.sock';
$syslog_socktype = 'udp';
"""

OPENDKIM_CONF = """\
Syslog no
Mode v
Socket inet:{port}@127.0.0.1
PidFile {root}/opendkim.pid
InternalHosts {root}/internal-hosts
Nameservers {dns}
On-BadSignature reject
SendReports yes
ReportAddress postmaster@{local}
MTACommand {sendmail}
AuthservID mx.{local}
ResolverConfiguration {root}/unbound.conf
"""

OPENDMARC_CONF = """\
Syslog false
Socket inet:{port}@127.0.0.1
PidFile {root}/opendmarc.pid
AuthservID mx.{local}
IgnoreHosts {root}/internal-hosts
TrustedAuthservIDs mx.{local}
SPFSelfValidate false
RejectFailures true
FailureReports true
FailureReportsSentBy postmaster@{local}
ReportCommand {sendmail} -t
"""


def _configure_receiving(destination: Destination) -> dict[str, Path]:
    """The receiving instance and the filters' settings; the scripts it runs."""
    pkg = PACKAGES_ROOT
    domains = [*CLASSES, *MILTER_DOMAINS]
    routes = {"sender.test": f"smtp:[{destination.host}]:{destination.capture_port}"}
    routes |= {domain: "discard:" for domain in domains}
    spf = write_file(
        ROOT / "policyd-spf",
        f"#!/bin/sh\nPYTHONPATH={pkg}/usr/lib/python3/dist-packages exec /usr/bin/python3 "
        f'{pkg}/usr/bin/policyd-spf "$1"\n',
        0o755,
    )
    write_file(ROOT / "policyd-spf.conf", SPF_CONF)
    write_file(ROOT / "policyd-spf-ar.conf", SPF_AR_CONF.format(local=RECEIVING))
    master = RECV_MASTER.format(
        policy=POLICY_PORT, dkim=DKIM_PORT, dmarc=DMARC_PORT, opendkim=OPENDKIM_PORT,
        opendmarc=OPENDMARC_PORT, spf=spf, root=ROOT,
    )  # fmt: skip
    postfix.configure(RECV, RECEIVING, master + postfix.SERVICES, routes, {"postmaster": "root"})
    etc = RECV / "etc"
    (etc / "classes").write_text("".join(f"{d} {c}\n" for d, c in CLASSES.items()))
    with (etc / "main.cf").open("a") as main:
        main.write(
            RECV_MAIN.format(
                domains=", ".join(domains), grey_long=GREY_LONG_PORT,
                grey_short=GREY_SHORT_PORT, zone=RBL_ZONE, weight=WEIGHT_PORT, etc=etc,
            )
        )  # fmt: skip
    sendmail = write_file(
        ROOT / "sendmail-recv", f'#!/bin/sh\nexec /usr/sbin/sendmail -C {etc} "$@"\n', 0o755
    )
    write_file(RECV / "internal-hosts", "192.0.2.99\n")
    write_file(RECV / "unbound.conf", UNBOUND_CONF)
    for name in ("grey-long", "grey-short", "polw"):  # the daemons' own, as user nobody
        (RECV / name).mkdir(mode=0o755)
        shutil.chown(RECV / name, "nobody", "nogroup")
    write_file(RECV / "whitelist", "")
    write_file(RECV / "policyd-weight.conf", WEIGHT_CONF.format(port=WEIGHT_PORT, root=RECV))
    write_file(
        RECV / "opendkim.conf",
        OPENDKIM_CONF.format(port=OPENDKIM_PORT, root=RECV, dns=DNS_ADDRESS, local=RECEIVING,
                             sendmail=sendmail),
    )  # fmt: skip
    write_file(
        RECV / "opendmarc.conf",
        OPENDMARC_CONF.format(port=OPENDMARC_PORT, root=RECV, local=RECEIVING, sendmail=sendmail),
    )
    return {"sendmail": sendmail}


def _daemons(space: Namespace, stack: ExitStack) -> None:
    """postgrey twice (two delays), policyd-weight, OpenDKIM and OpenDMARC, in ``space``, each
    stopped on leaving ``stack``."""
    pkg = PACKAGES_ROOT
    perl = [
        "perl", "-T", f"-I{pkg}/usr/share/perl5", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36",
    ]  # fmt: skip
    libraries = f"{pkg}/usr/lib/x86_64-linux-gnu:{pkg}/usr/lib"
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": libraries}
    for name, port, delay in (
        ("grey-long", GREY_LONG_PORT, GREY_LONG_DELAY),
        ("grey-short", GREY_SHORT_PORT, GREY_SHORT_DELAY),
    ):
        command = [
            *perl, f"{pkg}/usr/sbin/postgrey", f"--inet=127.0.0.1:{port}",
            f"--dbdir={RECV / name}", f"--delay={delay}", "--user=nobody", "--group=nogroup",
            f"--whitelist-clients={RECV / 'whitelist'}",
            f"--whitelist-recipients={RECV / 'whitelist'}", f"--pidfile={RECV / name}.pid",
        ]  # fmt: skip
        stack.enter_context(
            listening(space.inside(*command), port, name, RECV / f"{name}.log", env=env)
        )
    weight = [
        *perl[:1], f"-I{pkg}/usr/share/perl5", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36",
        f"{pkg}/usr/sbin/policyd-weight", "-f", str(RECV / "policyd-weight.conf"), "-D", "start",
    ]  # fmt: skip
    stack.enter_context(
        listening(space.inside(*weight), WEIGHT_PORT, "policyd-weight", RECV / "weight.log",
                  env=env)
    )  # fmt: skip
    for name, port in (("opendkim", OPENDKIM_PORT), ("opendmarc", OPENDMARC_PORT)):
        flag = "-x" if name == "opendkim" else "-c"
        command = [f"{pkg}/usr/sbin/{name}", "-f", flag, str(RECV / f"{name}.conf")]
        stack.enter_context(
            listening(space.inside(*command), port, name, RECV / f"{name}.log", env=env)
        )


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return {domain: POLICY_PORT for domain in CLASSES} | MILTER_DOMAINS


def prepare(destination: Destination) -> dict[str, str]:
    """The packages unpacked, fresh folders and the receiving side configured; each package's
    version."""
    for leftover in ("send", "recv"):
        shutil.rmtree(ROOT / leftover, ignore_errors=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    _configure_receiving(destination)
    return versions


@contextmanager
def receiving(out: Path, mta: str, reports: list[Case]) -> Iterator[None]:
    """The DNS server, the filters and the receiving instance, in their namespace, while open
    (the DNS records name the report cases' addresses); the instance's log is copied beside
    ``out`` on leaving."""
    senders = {case.name: case.sender for case in reports}
    served = table(
        senders.get("dmarc-failure-report", "dmarc-failures@sender.test"),
        senders.get("dkim-failure-report", "dkim-failures@sender.test"),
    )
    resolv = resolv_conf(RECV / "resolv.conf", DNS_ADDRESS)
    with ExitStack() as stack:
        stack.enter_context(serving(served, DNS_ADDRESS))
        space = stack.enter_context(
            Namespace("receiving postfix", [Bind(resolv, "/etc/resolv.conf")], grace=10.0)
        )
        _daemons(space, stack)
        etc = str(RECV / "etc")
        space.run("postfix", "-c", etc, "start")
        stack.callback(shutil.copy, RECV / "maillog", out.parent / f"{mta}-receiving.log")
        stack.callback(space.run, "postfix", "-c", etc, "stop", check=False)
        yield


def split(built: list[Case]) -> tuple[list[Case], list[Case]]:
    """The cases submitted, and the reports (no recipient) collected after them."""
    return [c for c in built if c.recipients], [c for c in built if not c.recipients]


def reported(
    destination: Destination, reports: list[Case], out: Path, mta: str, versions: dict[str, str]
) -> list[Row]:
    """The reports' rows, once each has come (at most 30 s each, after the notices)."""
    rows: list[Row] = []
    for case in reports:
        version = versions[REPORTERS[case.name]]
        rows += collect(destination, [case], out, mta, version, timeout=30.0)
    return rows


def generate(out: Path, destination: Destination) -> list[Row]:
    sent, reports = split(load(MTA, POLICY_CASES))
    versions = prepare(destination)
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(),
                              captured=("sender.test", SOFT_DOMAIN), client=CLIENT)  # fmt: skip
    with receiving(out, MTA, reports):
        rows = postfix.run(SEND, PORT, destination, sent, out, MTA)
        return rows + reported(destination, reports, out, MTA, versions)
