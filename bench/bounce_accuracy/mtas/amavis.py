"""amavisd-new's own non-delivery notices (round 35): a content filter that bounces a message
writes its notice to the sender itself (its DSN template and a message/delivery-status part),
rather than answering the SMTP client that handed the message over.

amavisd-new 2.13.0 (``amavisd-new`` ``1:2.13.0-3+deb12u1``), the Perl modules it loads and
SpamAssassin 4.0.1 are unpacked from Debian's packages under ``/tmp/mta-amavis/root`` (never
installed). amavisd runs in taint mode (``#!/usr/bin/perl -T``), which ignores ``PERL5LIB``,
and re-executes itself by its own path, so it runs in a mount namespace of its own where the
unpacked ``usr`` is laid over the system's by a read-only overlay (``host.Overlay``; the
system's ``/usr`` unchanged): the modules are then where Perl looks for them and
SpamAssassin's rules where it expects them. Its user is ``nobody``, its home
``/tmp/mta-amavis/home``; its settings are Debian's (``01-debian``, ``20-debian_defaults``:
the banned file names and types, the spam levels; ``read_l10n_templates``: Debian's notice
templates) with the destinies of banned, bad-header, spam and virus mail set to ``D_BOUNCE``.

In front of it a fourth instance of the system's Postfix (``postfix.configure``, under
``/tmp/mta-amavis/postfix``) takes the cases' mail on ``PORT`` for ``hazel.test`` and hands
it to amavisd (``content_filter``, amavisd on ``AMAVIS_PORT``); amavisd hands what passes back
to Postfix's reinjection listener (``REINJECT``), which relays ``hazel.test`` to the scripted
server (the mailbox server behind it, which takes everything) and ``sender.test`` to the
capture server. amavisd sends its notices through the same reinjection listener
(``notify_method``), so they reach the capture server as any sender's bounce would.

Each case's message carries its content (``content`` in the case: an attachment of a banned
name or type, a header section amavisd finds bad, SpamAssassin's GTUBE test string); the
cases are ``amavis`` in ``filter_cases.yaml``.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import shutil
import smtplib
import subprocess
import zipfile
from datetime import UTC, datetime
from email.utils import format_datetime, make_msgid
from pathlib import Path

import yaml

from . import postfix
from .cases import FILTER_CASES, Case, collect, load
from .destination import Destination
from .host import ENV, Overlay, isolated, listening
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "amavis"
ROOT = Path("/tmp/mta-amavis")
PORT = 6025  # 2525 + the helper's test port offset (3500)
REINJECT = PORT + 1
AMAVIS_PORT = 13524  # amavisd's 10024 + 3500
LOCAL = "willow.test"  # Postfix's own domain (nothing is sent to it)
DOMAIN = "hazel.test"  # the recipients' domain: Postfix and amavisd are its MX
LOVER = "lena.holm@hazel.test"  # spam_lovers_maps: her copy of a spam passes
TIMEOUT = 120.0
NOBODY = 65534

PACKAGES = [
    "amavisd-new",
    # the Perl modules amavisd-new depends on that the system lacks
    "libnet-server-perl", "libmime-tools-perl", "libberkeleydb-perl", "libconvert-tnef-perl",
    "libconvert-uulib-perl", "libcommon-sense-perl", "libnet-libidn-perl", "libidn12",
    "libunix-syslog-perl", "libmail-dkim-perl", "libarchive-zip-perl", "libnet-snmp-perl",
    "libmailtools-perl", "libcrypt-openssl-rsa-perl", "libcrypt-openssl-bignum-perl",
    "libcrypt-openssl-random-perl", "libdigest-hmac-perl", "libmail-authenticationresults-perl",
    # SpamAssassin, loaded by amavisd in its own process, and what it needs
    "spamassassin", "libnetaddr-ip-perl", "libnet-dns-perl", "libnet-ip-perl",
    "libsocket6-perl", "libio-socket-inet6-perl", "libmail-spf-perl",
    # ClamAV's command-line scanner (its signature databases are not packaged: see SIGNATURES)
    "clamav", "libclamav12", "libmspack0",
]  # fmt: skip

MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd -o content_filter=amavisfeed:[127.0.0.1]:{amavis}
127.0.0.1:{reinject} inet n - n - - smtpd -o content_filter=
  -o smtpd_authorized_xforward_hosts=127.0.0.0/8
  -o receive_override_options=no_unknown_recipient_checks,no_header_body_checks,no_milters
amavisfeed unix - - n - 2 smtp -o smtp_data_done_timeout=1200 -o smtp_send_xforward_command=yes
  -o disable_dns_lookups=yes -o max_use=20
"""

# Debian's configuration files in Debian's order, without those that name the system's paths
# or host (10-debian_scripts, 05-domain_id, 05-node_id, 25-amavis_helpers: their settings are
# given here for this instance) and without 20-package, which turns the spam check off.
CONFIG = r"""
use strict;
my $R = '{root}';
include_config_files("$R/etc/amavis/conf.d/01-debian");
$daemon_user = 'nobody'; $daemon_group = 'nogroup';
$MYHOME = '{home}'; $TEMPBASE = "$MYHOME/tmp"; $ENV{{TMPDIR}} = $TEMPBASE;
$db_home = "$MYHOME/db"; $pid_file = "$MYHOME/amavisd.pid"; $lock_file = "$MYHOME/amavisd.lock";
$mydomain = '{domain}'; $myhostname = 'mx.{local}';
@local_domains_acl = ('.{domain}');
include_config_files("$R/etc/amavis/conf.d/20-debian_defaults");
read_l10n_templates('en_US', "$R/etc/amavis");
$DO_SYSLOG = 0; $LOGFILE = "$MYHOME/amavis.log"; $log_level = 2;
$enable_db = 0; $QUARANTINEDIR = undef;
$inet_socket_bind = '127.0.0.1'; $inet_socket_port = {amavis};
$forward_method = 'smtp:[127.0.0.1]:{reinject}'; $notify_method = $forward_method;
$max_servers = 2;
$final_banned_destiny = D_BOUNCE; $final_bad_header_destiny = D_BOUNCE;
$final_spam_destiny = D_BOUNCE; $final_virus_destiny = D_BOUNCE;
# Debian's 10 would send no notice for GTUBE's score of 1000
$sa_dsn_cutoff_level = 9999;
$sa_local_tests_only = 1;
$sa_configpath = "$R/usr/share/spamassassin"; $sa_siteconfigpath = "$R/etc/spamassassin";
@spam_lovers_maps = ([ '{lover}' ]);
# ClamAV's clamscan, as Debian's 15-av_scanners runs it, with a signature database of its own
@av_scanners = ();
@av_scanners_backup = (
  ['ClamAV-clamscan', 'clamscan',
    "--stdout --no-summary -r --tempdir=$TEMPBASE -d {signatures} {{}}",
    [0], qr/:.*\sFOUND$/m, qr/^.*?: (?!Infected Archive)(.*) FOUND$/m ],
);
1;
"""

# ClamAV's signatures come from its own servers (freshclam), which this machine cannot reach,
# and Debian packages none: clamscan reads one hash signature written here, the MD5 and size
# of the EICAR test file (a ClamAV .hdb line, as sigtool --md5 writes one), under a name of
# this harness's own. ClamAV reports it as "Local.Test.EICAR.UNOFFICIAL" (a database not
# signed by ClamAV); the scanner's run and amavisd's notice are otherwise real.
SIGNATURES = "44d88612fea8a8f36de82e1278abb02f:68:Local.Test.EICAR\n"
# the EICAR anti-virus test file (68 bytes)
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
TEXT = "Hello,\r\n\r\nthis is issue {number} of our newsletter.\r\n"
# SpamAssassin's Generic Test for Unsolicited Bulk Email (its rule GTUBE, score 1000)
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# the start of a DOS/PE executable, as file(1) knows one
EXE = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 48


def _contents() -> dict[str, str]:
    """Each amavis case's ``content`` (what its message carries), by case name."""
    data = yaml.safe_load(FILTER_CASES.read_text("utf-8"))
    return {entry["case"]: entry["content"] for entry in data.get(MTA) or []}


def _headers(case: Case, number: int, subject: str = "") -> list[str]:
    return [
        f"From: Newsletter <{case.sender}>",
        f"To: {', '.join(case.recipients)}",
        f"Subject: {subject or f'Newsletter {number}'}",
        f"Date: {format_datetime(datetime.now(UTC))}",
        f"Message-ID: {make_msgid(domain='sender.test')}",
        "MIME-Version: 1.0",
    ]


def _attached(case: Case, number: int, name: str, kind: str, data: bytes) -> bytes:
    boundary = f"=_part_{number}_boundary"
    encoded = base64.encodebytes(data).decode("ascii").replace("\n", "\r\n")
    lines = [
        *_headers(case, number),
        f'Content-Type: multipart/mixed; boundary="{boundary}"',
        "",
        f"--{boundary}",
        "Content-Type: text/plain; charset=us-ascii",
        "",
        TEXT.format(number=number) + "The file is attached.\r\n",
        f"--{boundary}",
        f'Content-Type: {kind}; name="{name}"',
        "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="{name}"',
        "",
        encoded,
        f"--{boundary}--",
        "",
    ]
    return "\r\n".join(lines).encode("ascii")


def _zipped(name: str, data: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(name, data)
    return buffer.getvalue()


def message(case: Case, number: int, content: str) -> bytes:
    """The bytes of ``case``'s message, carrying ``content``."""
    plain = "Content-Type: text/plain; charset=us-ascii"
    if content == "exe":
        return _attached(case, number, "setup.exe", "application/octet-stream", EXE)
    if content == "double-extension":
        return _attached(case, number, "invoice.pdf.exe", "application/pdf", EXE)
    if content == "banned-type":
        return _attached(case, number, "update.bin", "application/x-msdownload", EXE)
    if content == "zipped-exe":
        return _attached(case, number, "report.zip", "application/zip", _zipped("report.exe", EXE))
    if content == "eicar":
        return _attached(case, number, "sample.txt", "text/plain", EICAR)
    if content == "zipped-eicar":
        zipped = _zipped("sample.txt", EICAR)
        return _attached(case, number, "sample.zip", "application/zip", zipped)
    if content == "latin1-subject":
        head = _headers(case, number, f"Newsletter {number}: caf\xe9")
        text = "\r\n".join([*head, plain, "", TEXT.format(number=number)])
        return text.encode("latin-1")  # a raw non-ASCII byte (E9) in Subject, not encoded
    if content == "duplicate-subject":
        head = _headers(case, number)
        head.insert(3, f"Subject: Newsletter {number} (again)")
        return "\r\n".join([*head, plain, "", TEXT.format(number=number)]).encode("ascii")
    if content == "gtube":
        body = TEXT.format(number=number) + "\r\n" + GTUBE + "\r\n"
        return "\r\n".join([*_headers(case, number), plain, "", body]).encode("ascii")
    raise ValueError(f"{case.name}: no such content {content!r}")


def submit(cases: list[Case]) -> None:
    contents = _contents()
    with smtplib.SMTP("127.0.0.1", PORT, timeout=60) as client:
        client.ehlo("app.sender.test")
        for number, case in enumerate(cases, start=1):
            raw = message(case, number, contents[case.name])
            refused = client.sendmail(case.sender, list(case.recipients), raw)
            if refused:
                logger.warning("%s: Postfix refused %s at submission", case.name, refused)


def _configure(destination: Destination) -> Path:
    host = destination.host
    routes = {
        "sender.test": f"smtp:[{host}]:{destination.capture_port}",
        DOMAIN: f"smtp:[{host}]:{destination.port}",
    }
    master = MASTER.format(port=PORT, reinject=REINJECT, amavis=AMAVIS_PORT) + postfix.SERVICES
    postfix.configure(ROOT / "postfix", LOCAL, master, routes, {"postmaster": "root"})
    home = ROOT / "home"
    if home.exists():
        shutil.rmtree(home)
    (home / "tmp").mkdir(parents=True)
    (home / "db").mkdir()
    for path in (home, home / "tmp", home / "db"):
        os.chown(path, NOBODY, NOBODY)
    signatures = ROOT / "clamav"
    signatures.mkdir(exist_ok=True)
    (signatures / "local.hdb").write_text(SIGNATURES)
    config = ROOT / "amavisd.conf"
    settings = CONFIG.format(
        root=ROOT / "root", home=home, domain=DOMAIN, local=LOCAL, amavis=AMAVIS_PORT,
        reinject=REINJECT, lover=LOVER, signatures=signatures,
    )  # fmt: skip
    config.write_text(settings)
    return config


def _postfix(*args: str) -> None:
    subprocess.run(["postfix", "-c", str(ROOT / "postfix/etc"), *args], check=True, env=ENV)


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, FILTER_CASES)
    version = extract(PACKAGES, ROOT / "root")["amavisd-new"]
    config = _configure(destination)
    usr = Overlay("/usr", lower=ROOT / "root/usr")
    command = isolated(["/usr/sbin/amavisd", "-c", str(config), "foreground"], [usr])
    log = out.parent / f"{MTA}-amavisd.out"
    with listening(command, AMAVIS_PORT, "amavisd", log, env=ENV):
        _postfix("start")
        try:
            submit(built)
            return collect(destination, built, out, MTA, version, TIMEOUT)
        finally:
            _postfix("stop")
            shutil.copy(ROOT / "postfix/maillog", out.parent / f"{MTA}-postfix.log")
            shutil.copy(ROOT / "home/amavis.log", out.parent / f"{MTA}-amavisd.log")
