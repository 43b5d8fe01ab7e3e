"""fetchmail's notices (round 34): Debian's fetchmail, unpacked under ``/tmp/mta-fetchmail``
(never installed).

fetchmail is no MTA: it retrieves mail from a mailbox server and forwards each message to an
SMTP or LMTP listener; when the listener refuses a recipient or the message for good, it sends
a bounce of its own making to the message's sender (its ``bouncemail`` default, with ``set no
softbounce``: its default soft bounce keeps the message on the server and bounces nothing). So
each case's message waits in a POP3 mailbox of its own (``pop3.POP3Server``, with the sender
as ``Return-Path``), fetchmail polls every mailbox once in multidrop mode (``is * here``,
``localdomains``, ``no envelope``: each address of the message's ``To`` at the local domain
is forwarded as it is), ``juniper.test``'s over SMTP to the scripted remote server and
``tansy.test``'s over LMTP to the scripted LMTP server (``lmtp.py``), which answer each
recipient as the case scripts it. (After an LMTP refusal fetchmail forwards the message to
its postmaster and reads the scripted server's one reply to that DATA as unexpected, so it
keeps the message on the server; the notice has been sent by then.)

fetchmail sends its bounces to the SMTP port of ``localhost`` (its manual, "BUGS"), the service
``smtp`` of ``/etc/services``: it runs in a mount namespace of its own where a copy of that
file names ``BOUNCE_PORT`` (the system's file is never changed), and a capture server of the
shared :class:`Destination` listens there. Its own name is ``mx.juniper.test``.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path

from aiosmtpd.controller import Controller

from .cases import Case, collect, load, message, script_replies
from .destination import HOST, Destination, _CaptureHandler
from .host import ENV, Bind, isolated
from .lmtp import ScriptedLMTP
from .packages import extract
from .pop3 import POP3Server
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "fetchmail"
PACKAGES = ["fetchmail"]
ROOT = Path("/tmp/mta-fetchmail")
RUN = ROOT / "run"
LOCAL = "juniper.test"  # forwarded over SMTP to the scripted remote server
LMTP_DOMAIN = "tansy.test"  # forwarded over LMTP to the scripted LMTP server (lmtp.py)
POP3_PORT = 5410  # 2110 + the helper's test port offset (3300)
BOUNCE_PORT = 5825  # 2525 + the helper's test port offset (3300)
LMTP_PORT = 5832  # 2532 + the helper's test port offset (3300)
TIMEOUT = 60.0  # seconds to wait for the notices once fetchmail has polled
FETCHMAIL = ROOT / "usr/bin/fetchmail"

RC = """\
set no softbounce
set bouncemail
set no syslog
set postmaster "postmaster"
"""

POLL = (
    "poll {name} via {host} proto pop3 port {pop3} no envelope no dns localdomains {local}\n"
    '  user "{user}" there with password "{user}" is * here\n'
    '  smtphost "{host}/{smtp}" smtpaddress {local} fetchall sslproto ""{lmtp}\n'
)


def mailbox(case: Case) -> str:
    """The POP3 user holding ``case``'s message: its sender's local part."""
    return case.sender.partition("@")[0]


def _poll(number: int, case: Case, destination: Destination) -> str:
    """The poll of ``case``'s mailbox: its recipients' domain is local, and forwarded over
    SMTP (``LOCAL``) or LMTP (``LMTP_DOMAIN``)."""
    lmtp = all(a.endswith("@" + LMTP_DOMAIN) for a in case.recipients)
    return POLL.format(
        name=f"box{number:02d}", host=HOST, pop3=POP3_PORT, user=mailbox(case),
        local=LMTP_DOMAIN if lmtp else LOCAL, smtp=LMTP_PORT if lmtp else destination.port,
        lmtp=" lmtp" if lmtp else "",
    )  # fmt: skip


def _configure(destination: Destination, built: list[Case]) -> Path:
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    polls = [_poll(n, case, destination) for n, case in enumerate(built, start=1)]
    rc = RUN / "fetchmailrc"
    rc.write_text(RC + "".join(polls))
    rc.chmod(0o600)
    services = Path("/etc/services").read_text()
    services = re.sub(r"(?m)^smtp\s+25/tcp.*$", f"smtp\t\t{BOUNCE_PORT}/tcp\t\tmail", services)
    (RUN / "services").write_text(services)
    return rc


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["fetchmail"]
    built = load(MTA)
    script_replies(destination, built)
    rc = _configure(destination, built)
    mailboxes = {
        mailbox(case): [f"Return-Path: <{case.sender}>\r\n".encode() + message(case, number)]
        for number, case in enumerate(built, start=1)
    }
    capture = Controller(_CaptureHandler(destination), hostname=HOST, port=BOUNCE_PORT)
    capture.start()
    try:
        with (
            POP3Server(POP3_PORT, mailboxes, f"pop.{LOCAL}") as pop3,
            ScriptedLMTP(destination, f"mx.{LMTP_DOMAIN}", LMTP_PORT),
        ):
            command = isolated(
                [str(FETCHMAIL), "-f", str(rc), "-v", "--nodetach", "--nosyslog",
                 "-i", str(RUN / "fetchids")],
                [Bind(RUN / "services", "/etc/services")],
                hostname=f"mx.{LOCAL}",
            )  # fmt: skip
            env = {**ENV, "HOME": str(RUN), "FETCHMAILHOME": str(RUN), "LC_ALL": "C"}
            with (RUN / "fetchmail.log").open("wb") as log:
                done = subprocess.run(command, env=env, stdout=log, stderr=log, timeout=300)
            logger.info("fetchmail exited %s", done.returncode)
            for case in built:
                kept = not pop3.deleted(mailbox(case))
                logger.info(
                    "%s: message %s on the server", case.name, "kept" if kept else "deleted"
                )
            return collect(destination, built, out, MTA, version, TIMEOUT)
    finally:
        capture.stop()
        if (RUN / "fetchmail.log").exists():
            shutil.copy(RUN / "fetchmail.log", out.parent / f"{MTA}.log")
