"""Exim's content scanning as the RECEIVING server, in other MTAs' notices (round 68): Debian
12's Exim 4.96 built with content scanning (``exim4-daemon-heavy``, unpacked under
``/tmp/r68-content``, never installed) runs as the remote server on 127.0.0.1:
``RECEIVING_PORT``, refusing or deferring at SMTP time by what the message holds, against a
private clamd and a private spamd of this module's (their own ports, never another round's).
The sending MTA of this module is a second instance of the system's Postfix;
``exim_content_exim`` and ``exim_content_sendmail`` are the others.

Exim runs as round 59's receiving Exim does (``exim_receiving_postfix``): in a mount namespace
where ``/etc`` is seen through a writable layer of ours holding the passwd and group files
with Exim's user, and sa-exim's configuration file at the path its plugin has compiled in,
``/etc/exim4/sa-exim.conf`` (the system's ``/etc`` is not changed). The RCPT ACL keeps the
recipient's domain in ``$acl_m_case`` (one domain per case), and the DATA and MIME ACLs and
sa-exim choose by it. What it answers (Exim's specification, chapters 45 and 46; Debian's
``exim4-config`` examples; sa-exim's ``sa-exim.conf``):

* :data:`SPAM`: ``deny spam = nobody`` with the specification's example message (45.3), "550
  This message was classified as SPAM", the GTUBE test string scoring 1000;
* :data:`SPAM_SCORE`: Debian's example (``40_exim4-config_check_data``), ``spam = nobody:true``
  and ``$spam_score_int`` over 150: "550 Classified as spam (score 1000.0)";
* :data:`SPAM_DOWN`: the first with ``spamd_address`` (expanded per message) a port where
  nothing listens: the condition defers, "451 Temporary local problem - please try later", at
  every try (with ``/defer_ok`` the message would be taken; no case);
* :data:`CUSTOM`: ``spam = nobody`` with a ``message`` of our own (:data:`CUSTOM_TEXT`);
* :data:`MALWARE`: ``deny malware = *`` with the specification's example message (45.1), "550
  This message contains malware (<name>)", clamd finding the EICAR test string by a signature
  of ours (as round 55's);
* :data:`MALWARE_DEBIAN`: Debian's example message, "This message was detected as possible
  malware (<name>).";
* :data:`MALWARE_DOWN`: the first with ``av_scanner`` (expanded) a clamd that is not there:
  the condition defers ("451 Temporary local problem - please try later"), at every try;
* :data:`EXTENSION`: the MIME ACL's widely copied example of the exiscan-era documentation,
  "Blacklisted file extension detected" for an ``.exe`` attachment's ``$mime_filename``;
* :data:`ANOMALY`: the MIME ACL decoding a part (``decode = default``) whose base64 is broken:
  ``$mime_anomaly_level`` set, with the demime-era example's words over 4.96's variable,
  "Serious MIME defect detected (Broken BASE64 encoding detected)";
* :data:`REGEX`: ``deny regex = [Mm]ortgage : URGENT BUSINESS PROPOSAL`` with the
  specification's example message (45.5), "contains blacklisted regex (URGENT BUSINESS
  PROPOSAL)";
* sa-exim 4.2.1 (Debian's, ``local_scan_path``), spamc to the same spamd, its stock words
  (``SAmsgpermrej``, ``SAmsgtemprej``, ``SAmsgteergrubewait``): :data:`SA_REJECT` over
  ``SApermreject``, "550 Rejected"; :data:`SA_TEMPREJECT` over ``SAtempreject``, "451 Please
  try again later" at every try; :data:`SA_TEERGRUBE` over ``SAteergrube``, "451-Wait for more
  output" every ten seconds for ``SAteergrubetime`` (:data:`TEERGRUBE_SECONDS`), then the same
  451, at every try. Its thresholds are expansions of ``$acl_m_case``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import exim, postfix
from .cases import EXIM_CONTENT_CASES, load
from .destination import Destination
from .host import ENV, Overlay, identities, isolated, listening, write_file
from .milters_postfix import CLAMD_CONF, SIGNATURES
from .packages import extract, installed_version
from .receiver import Receiver
from .rows import Row

MTA = "exim_content_postfix"
ROOT = Path("/tmp/r68-content")
SERVER = ROOT / "receiver"  # the receiving Exim's spool, log and configuration
PACKAGES_ROOT = ROOT / "pkg"  # Exim, sa-exim, clamd, spamd unpacked
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 18925  # 2525 + the helper's test port offset (16400): the sending Postfix
RECEIVING_PORT = 18930
SPAMD_PORT = 18931
CLAMD_PORT = 18932
DOWN_PORT = 18933  # nothing listens here: the spamd and the clamd that are down
PACKAGES = [
    "exim4-daemon-heavy", "exim4-base", "libidn12", "libspf2-2", "libmariadb3", "libpq5",
    "libperl5.36", "libgnutls-dane0", "libnsl2", "sa-exim",
    "spamassassin", "spamd", "spamc", "libmail-dkim-perl", "libnet-dns-perl",
    "libnetaddr-ip-perl", "libmailtools-perl", "libdigest-hmac-perl", "libnet-ip-perl",
    "libmail-authenticationresults-perl",
    "clamav-daemon", "clamav-base", "libclamav12", "libmspack0",
]  # fmt: skip
# Every recipient domain is a subdomain of PARENT (Sendmail routes them all by one entry).
PARENT = "e68.test"
SPAM = "fir.e68.test"
SPAM_SCORE = "spruce.e68.test"
SPAM_DOWN = "larch.e68.test"
CUSTOM = "yew.e68.test"
MALWARE = "oak.e68.test"
MALWARE_DEBIAN = "ash.e68.test"
MALWARE_DOWN = "beech.e68.test"
EXTENSION = "maple.e68.test"
ANOMALY = "lime.e68.test"
REGEX = "elm.e68.test"
SA_REJECT = "pine.e68.test"
SA_TEMPREJECT = "poplar.e68.test"
SA_TEERGRUBE = "willow.e68.test"
DOMAINS = (SPAM, SPAM_SCORE, SPAM_DOWN, CUSTOM, MALWARE, MALWARE_DEBIAN, MALWARE_DOWN,
           EXTENSION, ANOMALY, REGEX, SA_REJECT, SA_TEMPREJECT, SA_TEERGRUBE)  # fmt: skip
CUSTOM_TEXT = "Your message looks like unsolicited bulk mail and was not accepted here"
TEERGRUBE_SECONDS = 30
USER_ID = exim.USER_ID

CONFIG = """\
primary_hostname = mx.{parent}
qualify_domain = {parent}
domainlist local_domains = {domains}
{daemon}
acl_smtp_rcpt = acl_check_rcpt
acl_smtp_mime = acl_check_mime
acl_smtp_data = acl_check_data
never_users = root
spamd_address = ${{if eq{{$acl_m_case}}{{{spam_down}}}{{127.0.0.1 {down}}}{{127.0.0.1 {spamd}}}}}
av_scanner = ${{if eq{{$acl_m_case}}{{{malware_down}}}{{clamd:127.0.0.1 {down}}}\\
               {{clamd:127.0.0.1 {clamd}}}}}
local_scan_path = {sa_exim}
local_scan_timeout = 5m

begin acl

acl_check_rcpt:
  require message = relay not permitted
          domains = +local_domains
  warn    set acl_m_case = $domain
  accept

acl_check_mime:
  deny    message = Blacklisted file extension detected
          condition = ${{if match {{${{lc:$mime_filename}}}} \\
                          {{\\N(\\.exe|\\.pif|\\.bat|\\.scr|\\.lnk|\\.com)$\\N}} {{1}}{{0}}}}
  deny    message = Serious MIME defect detected ($mime_anomaly_text)
          condition = ${{if eq{{$mime_content_transfer_encoding}}{{base64}}}}
          decode = default
          condition = ${{if >{{$mime_anomaly_level}}{{0}}}}
  accept

acl_check_data:
  deny    condition = ${{if inlist{{$acl_m_case}}{{{malware} : {malware_down}}}}}
          malware = *
          message = This message contains malware ($malware_name)
  deny    condition = ${{if eq{{$acl_m_case}}{{{malware_debian}}}}}
          malware = *
          message = This message was detected as possible malware ($malware_name).
  deny    condition = ${{if inlist{{$acl_m_case}}{{{spam} : {spam_down}}}}}
          spam = nobody
          message = This message was classified as SPAM
  deny    condition = ${{if eq{{$acl_m_case}}{{{spam_score}}}}}
          spam = nobody:true
          condition = ${{if >{{$spam_score_int}}{{150}}{{true}}{{false}}}}
          message = Classified as spam (score $spam_score)
  deny    condition = ${{if eq{{$acl_m_case}}{{{custom}}}}}
          spam = nobody
          message = {custom_text}
  deny    regex = [Mm]ortgage : URGENT BUSINESS PROPOSAL
          message = contains blacklisted regex ($regex_match_string)
  accept

begin routers

users:
  driver = redirect
  domains = +local_domains
  data = :blackhole:
"""

# sa-exim's own options (its stock sa-exim.conf's names and messages): spamc to our spamd, run
# only for its three domains, one threshold each (the others out of reach), nothing saved.
SA_EXIM = """\
SAEximDebug: 1
SAspamcpath: {spamc}
SAspamcHost: 127.0.0.1
SAspamcPort: {spamd}
SAEximRunCond: ${{if inlist{{$acl_m_case}}{{{reject} : {tempreject} : {teergrube}}}{{1}}{{0}}}}
SAmaxbody: 256000
SATruncBodyCond: 0
SARewriteBody: 0
SAteergrube: ${{if eq{{$acl_m_case}}{{{teergrube}}}{{25}}{{1048576}}}}
SAteergrubetime: {seconds}
SAteergrubeSavCond: 0
SAdevnull: 1048576
SAdevnullSavCond: 0
SApermreject: ${{if eq{{$acl_m_case}}{{{reject}}}{{12.0}}{{1048576}}}}
SApermrejectSavCond: 0
SAtempreject: ${{if eq{{$acl_m_case}}{{{tempreject}}}{{9.0}}{{1048576}}}}
SAtemprejectSavCond: 0
SAerrorSavCond: 0
SAtemprejectonerror: 0
SAspamacceptSavCond: 0
SAnotspamSavCond: 0
SAmsgteergrubewait: Wait for more output
SAmsgteergruberej: Please try again later
SAmsgpermrej: Rejected
SAmsgtemprej: Please try again later
SAmsgerror: Temporary local error while processing message, please contact postmaster.
"""

SPAMD_SITE = """\
use_bayes 0
use_auto_whitelist 0
bayes_auto_learn 0
"""


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the port it goes to: the receiving Exim."""
    return dict.fromkeys(DOMAINS, RECEIVING_PORT)


def sendmail_routes() -> dict[str, int]:
    """Sendmail's route to the receiving Exim: one mailer table entry for every subdomain of
    :data:`PARENT` (a key with a leading dot), not a mailer per domain (at most 25 mailers)."""
    return {f".{PARENT}": RECEIVING_PORT}


def _binary() -> Path:
    return PACKAGES_ROOT / "usr/sbin/exim4"


def unpack() -> dict[str, str]:
    """The packages unpacked under ``PACKAGES_ROOT``; their versions."""
    versions = extract(PACKAGES, PACKAGES_ROOT)
    _binary().chmod(0o755)  # run by root: no set-uid bit, so LD_LIBRARY_PATH is kept
    return versions


def _configure() -> Path:
    """The receiving side's folders (fresh): Exim's spool, log, configuration and ``/etc``
    layer, clamd's database and spamd's site folder."""
    if SERVER.exists():
        shutil.rmtree(SERVER)
    for folder in ("spool", "log", "etc", "etc-layer/exim4", "etc-layer-work", "clamav-db",
                   "tmp", "site"):  # fmt: skip
        (SERVER / folder).mkdir(parents=True)
    for folder in ("spool", "log"):
        shutil.chown(SERVER / folder, USER_ID, USER_ID)
    identities(
        SERVER / "etc-layer", [f"Debian-exim:x:{USER_ID}:{USER_ID}::{SERVER}:/bin/false"],
        [f"Debian-exim:x:{USER_ID}:"],
    )  # fmt: skip
    write_file(
        SERVER / "etc-layer/exim4/sa-exim.conf",
        SA_EXIM.format(
            spamc=PACKAGES_ROOT / "usr/bin/spamc", spamd=SPAMD_PORT, reject=SA_REJECT,
            tempreject=SA_TEMPREJECT, teergrube=SA_TEERGRUBE, seconds=TEERGRUBE_SECONDS,
        ),
    )  # fmt: skip
    # round 55's clamd (milters_postfix): its signature of the EICAR test string, its configuration
    write_file(SERVER / "clamav-db" / "local.ndb", SIGNATURES)
    write_file(SERVER / "clamd.conf", CLAMD_CONF.format(root=SERVER, port=CLAMD_PORT))
    write_file(SERVER / "site" / "local.cf", SPAMD_SITE)
    for pre in (PACKAGES_ROOT / "etc/spamassassin").glob("*.pre"):
        shutil.copy(pre, SERVER / "site")
    config = SERVER / "etc" / "exim.conf"
    config.write_text(
        CONFIG.format(
            parent=PARENT, domains=" : ".join(DOMAINS),
            daemon=exim.daemon_options(_binary(), SERVER, RECEIVING_PORT), spam_down=SPAM_DOWN,
            down=DOWN_PORT, spamd=SPAMD_PORT, malware_down=MALWARE_DOWN, clamd=CLAMD_PORT,
            sa_exim=PACKAGES_ROOT / "usr/lib/exim4/local_scan/sa-exim.so", malware=MALWARE,
            malware_debian=MALWARE_DEBIAN, spam=SPAM, spam_score=SPAM_SCORE, custom=CUSTOM,
            custom_text=CUSTOM_TEXT,
        )
    )  # fmt: skip
    return config


def _scanners(stack: ExitStack, env: dict[str, str]) -> None:
    """clamd and spamd on their own ports, each stopped on leaving ``stack``."""
    pkg = PACKAGES_ROOT
    clamd = [f"{pkg}/usr/sbin/clamd", "-c", str(SERVER / "clamd.conf")]
    stack.enter_context(listening(clamd, CLAMD_PORT, "clamd", SERVER / "clamd.out", env=env))
    spamd = [
        "perl", "-T", f"-I{pkg}/usr/share/perl5", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36",
        f"{pkg}/usr/sbin/spamd", "-L", "-s", "stderr", "-i", "127.0.0.1", "-p", str(SPAMD_PORT),
        f"--configpath={pkg}/usr/share/spamassassin", f"--siteconfigpath={SERVER / 'site'}",
        "-u", "nobody", "-x", f"--pidfile={SERVER / 'spamd.pid'}",
    ]  # fmt: skip
    stack.enter_context(listening(spamd, SPAMD_PORT, "spamd", SERVER / "spamd.out", env=env))


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[str]:
    """clamd, spamd and the receiving Exim, while open; their versions. The receiving Exim's
    log is copied beside ``out`` on leaving (``<mta>-receiver.log``)."""
    versions = unpack()
    config = _configure()
    env = {
        **ENV,
        "LD_LIBRARY_PATH": f"{PACKAGES_ROOT}/usr/lib/x86_64-linux-gnu:{PACKAGES_ROOT}/usr/lib",
    }
    layer = Overlay("/etc", upper=SERVER / "etc-layer")
    command = isolated([str(_binary()), "-C", str(config), "-bdf"], [layer])
    with ExitStack() as stack:
        _scanners(stack, env)
        try:
            stack.enter_context(
                listening(command, RECEIVING_PORT, "Exim", SERVER / "log" / "daemon.log", env)
            )
            yield (
                f"exim4-daemon-heavy-{versions['exim4-daemon-heavy']} receiving, sa-exim "
                f"{versions['sa-exim']}, spamd {versions['spamd']}, clamd "
                f"{versions['clamav-daemon']}"
            )
        finally:
            mainlog = SERVER / "log" / "mainlog"
            if mainlog.exists():
                shutil.copy(mainlog, out.parent / f"{mta}-receiver.log")


RECEIVER = Receiver(EXIM_CONTENT_CASES, routes_to, "receiving",
                    lambda s: receiving(s.out, s.mta),
                    sendmail_routes=sendmail_routes)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, EXIM_CONTENT_CASES)
    postfix.configure_sending(SEND, "quince-e.test", PORT, destination, routes_to())
    with receiving(out, MTA) as version:
        sending = installed_version("postfix")
        return postfix.run(SEND, PORT, destination, built, out, MTA,
                           version=f"postfix-{sending}; {version}")  # fmt: skip
