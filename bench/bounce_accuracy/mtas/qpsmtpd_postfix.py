"""qpsmtpd's own replies in other MTAs' notices (round 56): Debian 12's qpsmtpd 0.94 (Perl),
unpacked with the Perl modules it needs (:data:`PACKAGES`, never installed) under :data:`ROOT`,
runs as the RECEIVING server: four ``qpsmtpd-forkserver`` on 127.0.0.1, each with a config
folder of its own (``QPSMTPD_CONFIG``) and its plugins, in a mount namespace whose private
``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`).
The sending MTA (this module: a second instance of the system's Postfix; ``qpsmtpd_exim`` and
``qpsmtpd_sendmail`` the others) sends to them and writes the notices.

What each qpsmtpd refuses or defers, from its plugins' source (``plugins/*`` of the package):

* :data:`LOCAL` (port :data:`PORTS` ``main``): ``check_badmailfrom`` (the badmailfrom case's
  sender listed: "550 Your envelope sender is in my badmailfrom list" at MAIL),
  ``check_badrcptto`` (an address listed: "550 mail to <address> not accepted here (#5.1.1)",
  ``Qpsmtpd::DSN->no_such_user``, at RCPT), ``rcpt_ok`` (a domain not in ``rcpthosts``,
  :data:`UNLISTED`: "550 Relaying denied (#5.7.1)"), the ``databytes`` limit (20,000: "552
  Message too big!" after DATA); the rest is taken (``queue/maildir``);
* :data:`VIRUS` (``clamd``): ``virus/clamdscan`` with ``defer_on_error``, its clamd socket
  absent (no clamd runs): "452 Unable to scan for viruses" after DATA, at every try;
* :data:`DNSBL` (``dnsbl``): ``dnsbl`` with ``reject_type temp``, 127.0.0.1 listed in
  :data:`DNSBL_ZONE` with a TXT reason: a 450 with the reason in place of the greeting (it
  checks at connect), at every try;
* :data:`RHSBL` (``rhsbl``): ``rhsbl``, the senders' domain ``sender.test`` listed in
  :data:`RHSBL_ZONE`: "550 Mail from sender.test rejected because it <TXT>" at MAIL.

The greylisting plugin of the package cannot run: it calls ``is_p0f_match``, which no module of
qpsmtpd 0.94 defines ("FATAL PLUGIN ERROR", and the transaction goes on), so it is not used.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import QPSMTPD_CASES, Case, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace, stop, wait_listening
from .packages import extract
from .receiver import Receiver
from .rows import Row

MTA = "qpsmtpd_postfix"
ROOT = Path("/tmp/mta-r56-qpsmtpd")
RUN = ROOT / "run"
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 8125  # 2525 + the helper's test port offset (5600): the sending Postfix
PACKAGES = [
    "qpsmtpd", "libnet-dns-perl", "libdigest-hmac-perl", "libnet-ip-perl", "libmail-spf-perl",
    "libnetaddr-ip-perl", "libipc-shareable-perl", "libsocket6-perl", "libio-socket-inet6-perl",
    "libclamav-client-perl",
]  # fmt: skip
DNS_ADDRESS = "127.56.0.53"
LOCAL = "lychee-q.test"  # in the main qpsmtpd's rcpthosts
UNLISTED = "longan-q.test"  # routed to the main qpsmtpd, not in its rcpthosts
VIRUS = "salak-q.test"
DNSBL = "rambutan-q.test"
RHSBL = "mangosteen-q.test"
PORTS = {"main": 8128, "clamd": 8129, "dnsbl": 8130, "rhsbl": 8131}
DNSBL_ZONE = "dnsbl.r56.test"
RHSBL_ZONE = "rhsbl.r56.test"
DNSBL_REASON = "Blocked: 127.0.0.1 is listed in dnsbl.r56.test as a source of spam"
RHSBL_REASON = "is listed in rhsbl.r56.test as a spam-sending domain"
TABLE = Table(
    {
        f"1.0.0.127.{DNSBL_ZONE}": Name((("A", "127.0.0.2"), ("TXT", DNSBL_REASON))),
        f"sender.test.{RHSBL_ZONE}": Name((("A", "127.0.0.2"), ("TXT", RHSBL_REASON))),
    }
)
BADMAILFROM_CASE = "qpsmtpd-badmailfrom"
BADRCPTTO_CASES = ("qpsmtpd-badrcptto", "qpsmtpd-some-recipients")


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the qpsmtpd port it goes to."""
    main = PORTS["main"]
    return {LOCAL: main, UNLISTED: main, VIRUS: PORTS["clamd"], DNSBL: PORTS["dnsbl"],
            RHSBL: PORTS["rhsbl"]}  # fmt: skip


def _configure(cases: list[Case]) -> dict[str, Path]:
    """Each qpsmtpd's config folder (fresh), by the name of :data:`PORTS`."""
    if RUN.exists():
        shutil.rmtree(RUN)
    plugin_dir = ROOT / "usr/share/qpsmtpd/plugins"
    badmailfrom = [case.sender for case in cases if case.name == BADMAILFROM_CASE]
    badrcptto = [case.recipients[-1] for case in cases if case.name in BADRCPTTO_CASES]
    folders = {}
    for name, domain in (("main", LOCAL), ("clamd", VIRUS), ("dnsbl", DNSBL), ("rhsbl", RHSBL)):
        home = RUN / name
        config = folders[name] = home / "config"
        for sub in ("config", "spool", "maildir/cur", "maildir/new", "maildir/tmp"):
            (home / sub).mkdir(parents=True)
        os.chmod(home / "spool", 0o700)
        files = {"spool_dir": str(home / "spool"), "plugin_dirs": str(plugin_dir),
                 "loglevel": "6", "me": f"mx.{domain}", "rcpthosts": domain}  # fmt: skip
        queue = f"queue/maildir {home / 'maildir'}"
        if name == "main":
            files |= {"databytes": "20000", "badmailfrom": "\n".join(badmailfrom),
                      "badrcptto": "\n".join(badrcptto)}  # fmt: skip
            files["plugins"] = "\n".join(("check_badmailfrom", "check_badrcptto", "rcpt_ok", queue))
        elif name == "clamd":
            socket = home / "no-clamd.sock"  # no clamd listens there
            files["plugins"] = "\n".join((
                f"virus/clamdscan clamd_socket {socket} defer_on_error 1 scan_all 1"
                " deny_viruses 1", "rcpt_ok", queue,
            ))  # fmt: skip
        elif name == "dnsbl":
            files["dnsbl_zones"] = DNSBL_ZONE
            files["plugins"] = "\n".join(("dnsbl reject_type temp", "rcpt_ok", queue))
        else:
            files["rhsbl_zones"] = RHSBL_ZONE
            files["plugins"] = "\n".join(("rhsbl", "rcpt_ok", queue))
        for file, text in files.items():
            (config / file).write_text(text + "\n")
    return folders


@contextmanager
def receiving(cases: list[Case], out: Path, mta: str) -> Iterator[str]:
    """The four qpsmtpd in their namespace, with the DNS server, while open; qpsmtpd's version.
    Their log is copied beside ``out`` on leaving."""
    version = extract(PACKAGES, ROOT)["qpsmtpd"]
    folders = _configure(cases)
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    log = RUN / "qpsmtpd.log"
    perl = ["perl", "-T", f"-I{ROOT / 'usr/share/perl5'}",
            f"-I{ROOT / 'usr/lib/x86_64-linux-gnu/perl5/5.36'}"]  # fmt: skip
    with ExitStack() as stack:
        stack.enter_context(serving(TABLE, DNS_ADDRESS))
        namespace = stack.enter_context(
            Namespace(mta, [Bind(resolv, "/etc/resolv.conf")], grace=5.0)
        )
        output = stack.enter_context(log.open("wb"))
        daemons = []
        for name, config in folders.items():
            command = [*perl, str(ROOT / "usr/bin/qpsmtpd-forkserver"), "-l", "127.0.0.1",
                       "-p", str(PORTS[name]), "-u", "root"]  # fmt: skip
            env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "QPSMTPD_CONFIG": str(config)}
            daemons.append(
                subprocess.Popen(namespace.inside(*command), env=env, start_new_session=True,
                                 stdin=subprocess.DEVNULL, stdout=output, stderr=output)
            )  # fmt: skip
        try:
            for port in PORTS.values():
                wait_listening(port, "qpsmtpd")
            yield f"qpsmtpd-{version}"
        finally:
            for daemon in daemons:
                stop(daemon)
            shutil.copy(log, out.parent / f"{mta}-qpsmtpd.log")


RECEIVER = Receiver(QPSMTPD_CASES, routes_to, "qpsmtpd",
                    lambda s: receiving(s.cases, s.out, s.mta))  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, QPSMTPD_CASES)
    postfix.configure_sending(SEND, "cherimoya-q.test", PORT, destination, routes_to())
    with receiving(built, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
