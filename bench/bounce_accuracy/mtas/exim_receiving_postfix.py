"""Exim's own refusals as the RECEIVING server, in other MTAs' notices (round 59): Debian 12's
Exim 4.96 (``exim4-daemon-light``, unpacked as round 21's, ``exim.unpack``, never installed)
runs as the remote server on 127.0.0.1:``RECEIVING_PORT`` with a configuration of ours whose
ACLs refuse or defer by the recipient's domain, in a mount namespace where a private
``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`)
and private passwd and group files add Exim's user (as ``exim.py``'s). The sending MTA (this
module: a second instance of the system's Postfix; ``exim_receiving_exim`` and
``exim_receiving_sendmail`` the others) sends to it and writes the notices.

What the receiving Exim answers, its own words where the ACL gives no ``message`` (its
``acl.c``, ``verify.c``, ``smtp_in.c`` and its default configuration file):

* :data:`VERIFY_RECIPIENT` (a local domain): ``!verify = recipient`` for a local part no
  router takes: "550 Unrouteable address";
* :data:`VERIFY_SENDER`: ``!verify = sender``; the senders' domain ``sender.test`` is
  NXDOMAIN in the receiver's DNS: "550-Verification failed for <...>", "550-Unrouteable
  address", "550 Sender verify failed";
* :data:`CALLOUT` (relayed to the scripted server, which refuses the address):
  ``!verify = recipient/callout``: "550-Callout verification failed:" and the next hop's reply;
* :data:`CALLOUT_DOWN` (relayed to a port where nothing listens): the same callout cannot be
  made: a 451 at every try;
* :data:`RATELIMIT`: ``defer ratelimit = 0.5 / 1h / strict / per_rcpt / $domain`` with the
  ``message`` of the example in Exim's specification ("Rate limiting incoming messages"):
  "451 Sender rate exceeds 0.5 messages per 1h", at every try (without a message, Exim
  answers a deferring ratelimit with the bare ``defer``'s words, below);
* :data:`DNSBL`: ``deny dnslists = dnsbl.r59.test``, 127.0.0.1 listed with a TXT reason,
  with the ``message`` of the specification's example (without one, Exim answers the bare
  ``deny``'s words): "550-rejected because 127.0.0.1 is in a black list at dnsbl.r59.test"
  and the TXT;
* :data:`SIZE`: ``message_size_limit = 20K``: "552 Message size exceeds maximum permitted";
* :data:`MANY`: ``recipients_max = 2`` with ``recipients_max_reject``: "552 too many
  recipients" for a third RCPT;
* :data:`UNRELAYED`: routed to it, neither local nor relayed: its default configuration's
  "550 relay not permitted";
* :data:`DEFERRED`: a bare ``defer``: "451 Temporary local problem - please try later", at
  every try;
* :data:`DENIED`: a bare ``deny``: "550 Administrative prohibition";
* :data:`CUSTOM`: ``deny message = <text of ours>`` in the DATA ACL (after the message).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import exim, postfix
from .cases import EXIM_ACL_CASES, Case, load, script_replies
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import ENV, Bind, identities, isolated, listening
from .packages import installed_version
from .rows import Row

MTA = "exim_receiving_postfix"
ROOT = Path("/tmp/mta-r59")
RECEIVER = ROOT / "receiver"  # the receiving Exim's root (exim.unpack, spool, log, etc)
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 18425  # 2525 + the helper's test port offset (15900): the sending Postfix
RECEIVING_PORT = 18430
DNS_ADDRESS = "127.59.0.53"
# Every recipient domain is a subdomain of PARENT: Sendmail's mailer table routes them all by
# one entry (".e59.test"), as a mailer per domain would pass its limit of 25 mailers.
PARENT = "e59.test"
VERIFY_RECIPIENT = "juniper.e59.test"
VERIFY_SENDER = "laurel.e59.test"
CALLOUT = "myrtle.e59.test"
CALLOUT_DOWN = "sorrel.e59.test"
RATELIMIT = "rowan.e59.test"
DNSBL = "aspen.e59.test"
SIZE = "birch.e59.test"
MANY = "cedar.e59.test"
UNRELAYED = "elder.e59.test"
DEFERRED = "hawthorn.e59.test"
DENIED = "holly.e59.test"
CUSTOM = "ivy.e59.test"
LOCAL_DOMAINS = (VERIFY_RECIPIENT, VERIFY_SENDER, RATELIMIT, DNSBL, SIZE, MANY, DEFERRED, DENIED,
                 CUSTOM)  # fmt: skip
DNSBL_ZONE = "dnsbl.r59.test"
DNSBL_REASON = "127.0.0.1 is listed as a source of unsolicited mail, see http://dnsbl.r59.test/"
TABLE = Table({f"1.0.0.127.{DNSBL_ZONE}": Name((("A", "127.0.0.2"), ("TXT", DNSBL_REASON)))})
CUSTOM_TEXT = "Your message was refused by the content policy of this site"
UNKNOWN_CASE = "exim-unknown-user"  # its last recipient is no user of VERIFY_RECIPIENT
USER_ID = exim.USER_ID

CONFIG = """\
primary_hostname = mx.{verify_recipient}
qualify_domain = {verify_recipient}
domainlist local_domains = {local_domains}
domainlist relay_to_domains = {callout} : {callout_down}
{daemon}
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_data = acl_check_data
message_size_limit = 20K
recipients_max = 2
recipients_max_reject = true
never_users = root

begin acl

acl_check_rcpt:
  require message = relay not permitted
          domains = +local_domains : +relay_to_domains
  deny    domains = {dnsbl}
          message = rejected because $sender_host_address is in a black list at \\
                    $dnslist_domain\\n$dnslist_text
          dnslists = {dnsbl_zone}
  deny    domains = {verify_sender}
          !verify = sender
  deny    domains = {callout} : {callout_down}
          !verify = recipient/callout=5s
  deny    domains = +local_domains
          !verify = recipient
  defer   domains = {ratelimit}
          message = Sender rate exceeds $sender_rate_limit messages per $sender_rate_period
          ratelimit = 0.5 / 1h / strict / per_rcpt / $domain
  defer   domains = {deferred}
  deny    domains = {denied}
  accept

acl_check_data:
  deny    message = {custom_text}
          condition = ${{if match{{$recipients}}{{\\N@{custom_re}\\N}}}}
  accept

begin routers

relayed:
  driver = manualroute
  domains = {callout}
  route_list = * 127.0.0.1
  transport = to_next_hop
  self = send

relayed_down:
  driver = manualroute
  domains = {callout_down}
  route_list = * 127.0.0.1
  transport = to_no_hop
  self = send

dnslookup:
  driver = dnslookup
  domains = ! +local_domains
  transport = to_next_hop
  no_more

users:
  driver = redirect
  domains = +local_domains
  local_parts = ! lsearch;{root}/etc/unknown
  data = :blackhole:

begin transports

to_next_hop:
  driver = smtp
  port = {next_hop_port}

to_no_hop:
  driver = smtp
  port = {refused_port}
  connect_timeout = 5s

begin retry

*  *  F,60s,5s
"""


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the port it goes to: the receiving Exim."""
    domains = (*LOCAL_DOMAINS, CALLOUT, CALLOUT_DOWN, UNRELAYED)
    return dict.fromkeys(domains, RECEIVING_PORT)


def _configure(cases: list[Case], destination: Destination) -> Path:
    """The receiving Exim's folders (fresh), passwd and group copies, and configuration."""
    for folder in ("spool", "log", "etc"):
        path = RECEIVER / folder
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        if folder != "etc":
            shutil.chown(path, USER_ID, USER_ID)
    identities(
        RECEIVER, [f"Debian-exim:x:{USER_ID}:{USER_ID}::{RECEIVER}:/bin/false"],
        [f"Debian-exim:x:{USER_ID}:"],
    )  # fmt: skip
    unknown = [case.recipients[-1].split("@")[0] for case in cases if case.name == UNKNOWN_CASE]
    (RECEIVER / "etc" / "unknown").write_text("".join(f"{u}:\n" for u in unknown))
    config = RECEIVER / "etc" / "exim.conf"
    config.write_text(
        CONFIG.format(
            verify_recipient=VERIFY_RECIPIENT, local_domains=" : ".join(LOCAL_DOMAINS),
            callout=CALLOUT, callout_down=CALLOUT_DOWN,
            daemon=exim.daemon_options(_binary(), RECEIVER, RECEIVING_PORT), root=RECEIVER,
            dnsbl=DNSBL, dnsbl_zone=DNSBL_ZONE, verify_sender=VERIFY_SENDER,
            ratelimit=RATELIMIT, deferred=DEFERRED, denied=DENIED, custom_text=CUSTOM_TEXT,
            custom_re=CUSTOM.replace(".", "\\."), next_hop_port=destination.port,
            refused_port=destination.refused_port,
        )
    )  # fmt: skip
    return config


def _binary() -> Path:
    return RECEIVER / "root/usr/sbin/exim4"


@contextmanager
def receiving(cases: list[Case], destination: Destination, out: Path, mta: str) -> Iterator[str]:
    """The receiving Exim in its namespace, with the DNS server, while open; its version. The
    next hop of its callouts is ``destination``'s scripted server (the cases' scripts). Its
    log is copied beside ``out`` on leaving (``<mta>-receiver.log``)."""
    version = exim.unpack(RECEIVER)
    script_replies(destination, cases)
    config = _configure(cases, destination)
    resolv = resolv_conf(RECEIVER / "resolv.conf", DNS_ADDRESS)
    mounts = [
        Bind(RECEIVER / "passwd", "/etc/passwd"),
        Bind(RECEIVER / "group", "/etc/group"),
        Bind(resolv, "/etc/resolv.conf"),
    ]
    env = {**ENV, "LD_LIBRARY_PATH": str(RECEIVER / "root/usr/lib/x86_64-linux-gnu")}
    command = isolated([str(_binary()), "-C", str(config), "-bdf"], mounts)
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        try:
            stack.enter_context(
                listening(command, RECEIVING_PORT, "Exim", RECEIVER / "log" / "daemon.log", env)
            )
            yield f"exim4-{version} receiving"
        finally:
            mainlog = RECEIVER / "log" / "mainlog"
            if mainlog.exists():
                shutil.copy(mainlog, out.parent / f"{mta}-receiver.log")


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, EXIM_ACL_CASES)
    postfix.configure_sending(SEND, "quince-e.test", PORT, destination, routes_to())
    with receiving(built, destination, out, MTA) as version:
        sending = installed_version("postfix")
        return postfix.run(SEND, PORT, destination, built, out, MTA,
                           version=f"postfix-{sending}; {version}")  # fmt: skip
