"""qmail-smtpd's own replies in other MTAs' notices (round 53): round 42's notqmail, built from
the same commit (``qmail.built``) but with a home of its own (:data:`HOME`, compiled in: a
build under :data:`SRC`), runs its ``qmail-smtpd`` behind Debian's ``tcpserver`` (ucspi-tcp,
unpacked) as the remote server, and ``qmail-send`` as the final destination of :data:`LOCAL`,
in a mount namespace where a private ``/etc/passwd`` and ``/etc/group`` add qmail's users
(``qmail.accounts``; the system's files are never changed). The sending MTA (this module: a
second instance of the system's Postfix, ``postfix.configure``; ``qmail_smtpd_exim`` and
``qmail_smtpd_sendmail`` the others) sends to it and writes the notices.

What qmail-smtpd itself refuses or defers, from its source (``qmail-smtpd.c``, ``qmail.c``):

* a domain not in ``control/rcpthosts`` (:data:`UNLISTED`, routed to it): "553 sorry, that
  domain isn't in my list of allowed rcpthosts (#5.7.1)" at RCPT;
* an envelope sender in ``control/badmailfrom``: "553 sorry, your envelope sender is in my
  badmailfrom list (#5.7.1)", given at RCPT;
* a message over ``control/databytes`` (20,000): "552 sorry, that message size exceeds my
  databytes limit (#5.3.4)" after DATA;
* a queue that fails: more ``qmail-smtpd`` (one per domain of :data:`BROKEN`, each on a port
  of its own) whose ``QMAILQUEUE`` names a program that reads the message and exits with a code
  of ``qmail_close``'s: 79, which it gives no meaning to, "451 qq temporary problem (#4.3.0)";
  53, "451 qq write error or disk full (#4.3.0)" (both after DATA, at every try until the sender
  gives up); 31, "554 mail server permanently rejected message (#5.3.0)", the code content
  filters in qmail-queue's place (simscan, qmail-scanner) exit with to refuse a message.

qmail-smtpd takes every address of a domain in ``rcpthosts`` (it has no list of users): an
unknown user of :data:`LOCAL` is taken, and ``qmail-send``'s own notice (qmail-local's "Sorry,
no mailbox here by that name. (#5.1.1)") comes back to the sender through the sending MTA
(``control/smtproutes`` sends ``sender.test`` to the sending MTA's listener, which relays it to
the capture server). ``kiri.noa`` of :data:`LOCAL` is a maildir, delivered.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from . import postfix, qmail
from .cases import QMAIL_SMTPD_CASES, Case, load
from .destination import Destination
from .host import ENV, Namespace, stop, wait_listening
from .packages import extract
from .receiver import Receiver, Sending
from .rows import Row

MTA = "qmail_smtpd_postfix"
ROOT = Path("/tmp/mta-qmail-smtpd")
SRC = ROOT / "src"
HOME = ROOT / "home"  # conf-qmail: compiled into every program of this build
RUN = ROOT / "run"
UCSPI = ROOT / "ucspi"
SEND = ROOT / "postfix"  # the sending Postfix instance
PORT = 7825  # 2525 + the helper's test port offset (5300): the sending Postfix
SMTPD_PORT = 7828  # qmail-smtpd
LOCAL = "yuzu.test"  # qmail's own domain (locals, rcpthosts)
UNLISTED = "quandong.test"  # routed to qmail-smtpd, not in its rcpthosts
# Domains routed to a qmail-smtpd whose queue program fails (in rcpthosts): its port, the exit.
BROKEN = {"jabuticaba.test": (7829, 79), "pitanga.test": (7834, 31), "cupuacu.test": (7835, 53)}
SENDING = "cherimoya.test"  # the sending Postfix's own domain
BADMAILFROM_CASE = "qmail-smtpd-badmailfrom"  # its sender is listed in control/badmailfrom
CONTROL = {
    "me": f"mx.{LOCAL}",
    "locals": LOCAL,
    "rcpthosts": "\n".join((LOCAL, *BROKEN)),
    "databytes": "20000",
    "timeoutremote": "10",
    "timeoutconnect": "5",
    "queuelifetime": "600",
}
DOT_QMAIL = {"kiri.noa": "./Maildir/\n", "postmaster": "./Maildir/\n"}


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the qmail-smtpd port it goes to."""
    return {LOCAL: SMTPD_PORT, UNLISTED: SMTPD_PORT} | {d: port for d, (port, _) in BROKEN.items()}


def _configure(namespace: Namespace, cases: list[Case], relay_port: int) -> dict[int, Path]:
    """A fresh home (qmail's own ``instpackage`` and ``instchown``), its control files, the
    alias user's files; the failing queue programs, by the port of their qmail-smtpd."""
    senders = [case.sender for case in cases if case.name == BADMAILFROM_CASE]
    control = qmail.installed(namespace, SRC, HOME, CONTROL | {"badmailfrom": "\n".join(senders)})
    # qmail's own notices go back through the sending MTA, which relays them to the capture
    (control / "smtproutes").write_text(f"sender.test:127.0.0.1:{relay_port}\n")
    qmail.alias_files(HOME, DOT_QMAIL)
    programs = {}
    for port, code in BROKEN.values():
        program = programs[port] = ROOT / f"qq-exits-{code}"
        program.write_text(f"#!/bin/sh\ncat >/dev/null\nexit {code}\n")
        program.chmod(0o755)
    return programs


def _started(command: list[str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    env = {"PATH": f"{HOME / 'bin'}:{ENV['PATH']}"}
    return subprocess.Popen(command, env=env, start_new_session=True, cwd=HOME,
                            stdin=subprocess.DEVNULL, stdout=output, stderr=output)  # fmt: skip


@contextmanager
def receiving(cases: list[Case], relay_port: int, out: Path, mta: str) -> Iterator[str]:
    """qmail (qmail-send and its qmail-smtpd) in its namespace while open; its version. Its
    log is copied beside ``out`` on leaving."""
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)
    qmail.built(SRC, HOME)
    version = extract(["ucspi-tcp"], UCSPI)["ucspi-tcp"]
    log = RUN / "qmail.log"
    with Namespace(mta, qmail.mounts(RUN, HOME), grace=5.0) as namespace:
        programs = _configure(namespace, cases, relay_port)
        server = [
            str(UCSPI / "usr/bin/tcpserver"), "-q", "-u", str(qmail.USERS["qmaild"]),
            "-g", str(qmail.GROUPS["nofiles"]), "-R", "-H", "-l", LOCAL, "127.0.0.1",
        ]  # fmt: skip
        smtpd = [*server, str(SMTPD_PORT), str(HOME / "bin/qmail-smtpd")]
        failing = [
            [*server, str(port), "/usr/bin/env", f"QMAILQUEUE={program}",
             str(HOME / "bin/qmail-smtpd")]
            for port, program in programs.items()
        ]  # fmt: skip
        start = [str(HOME / "bin/qmail-start"), "./Maildir/", "cat"]
        with log.open("wb") as output:
            daemons = [
                _started(namespace.inside(*command), output) for command in (smtpd, *failing, start)
            ]
        try:
            for port in (SMTPD_PORT, *programs):
                wait_listening(port, "qmail-smtpd")
            yield f"{qmail.VERSION}+ucspi-tcp-{version}"
        finally:
            for daemon in daemons:
                stop(daemon)
            shutil.copy(log, out.parent / f"{mta}-qmail.log")


@contextmanager
def receiving_for(sending: Sending) -> Iterator[str]:
    """``receiving`` for a sending MTA in front (``RECEIVER``): qmail relays its own notices
    through that MTA's listener."""
    with receiving(sending.cases, sending.port, sending.out, sending.mta) as versions:
        yield f"qmail-smtpd {versions}"


RECEIVER = Receiver(QMAIL_SMTPD_CASES, routes_to, "qmail", receiving_for)


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, QMAIL_SMTPD_CASES)
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to())
    with receiving(built, PORT, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA,
                           behind=f"qmail-smtpd {version}")  # fmt: skip
