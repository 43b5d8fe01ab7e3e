"""Replies of Debian's ``vacation`` program (round 37): the classic BSD vacation(1), which a
user runs from ``~/.forward`` (``\\user, "|/usr/bin/vacation user"``): it reads each message
on its standard input and, once per sender and interval, sends the sender the whole message
the user wrote in ``~/.vacation.msg`` (headers included; ``$SUBJECT`` replaced by the
message's subject) through ``/usr/sbin/sendmail``. It skips mail from lists, bulk and
automatic senders, and mail whose To or Cc does not name the user.

``vacation`` 3.3.3 (needs only libc and libdb5.3, which the system has), unpacked under
``/tmp/mta-vacprog/root`` (never installed), is run once per case in a mount namespace of its
own where a copy of the passwd file that adds the users (``USERS``, homes under
``/tmp/mta-vacprog/home``) and a small ``sendmail`` of the harness's (it hands the reply to
the capture server over SMTP, a bare envelope sender qualified and a Date and Message-ID
added as an MTA's submission adds them; ``SENDMAIL``) are laid over the system's
files. Each case's message is handed over as a local delivery agent hands it to a command:
after an mbox ``From`` line, a ``Return-Path`` and a ``Delivered-To``. The cases are
``vacation_program`` in ``auto_cases.yaml``.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from .cases import collect, load, message
from .destination import Destination
from .host import ENV, Bind, isolated
from .packages import extract
from .rows import Row

MTA = "vacation_program"
PACKAGES = ["vacation"]
ROOT = Path("/tmp/mta-vacprog")
TIMEOUT = 30.0
DOMAIN = "elm-home.test"  # the users' domain
NOBODY = 65534
# Each user's ~/.vacation.msg, as a user writes it (the first as vacation(1)'s own example).
USERS = {
    "tove.lie": (
        "From: tove.lie@elm-home.test (Tove Lie)\n"
        "Subject: I am on vacation\n"
        "Delivered-By-The-Graces-Of: The Vacation program\n"
        "Precedence: bulk\n\n"
        "I am on vacation until 12 January. If you have something urgent,\n"
        "please contact Ulf Sand <ulf.sand@elm-home.test>.\n"
        "--Tove\n"
    ),
    "ulf.sand": (
        "From: Ulf Sand <ulf.sand@elm-home.test>\n"
        "Subject: Re: $SUBJECT\n\n"
        "I am travelling until 12 January with limited access to e-mail and\n"
        "will reply when I am back.\n"
    ),
    "vera.moen": (
        "From: Vera Moen <vera.moen@elm-home.test>\n"
        "Subject: Fraværsmelding\n"
        "Content-Type: text/plain; charset=utf-8\n\n"
        "Jeg er på ferie til 12. januar og leser ikke e-post.\n"
        "Haster det, ring sentralbordet.\n"
    ),
}

SENDMAIL = """\
#!/usr/bin/python3
# The harness's sendmail for vacation(1): the reply to the capture server, envelope as given.
import email.utils, smtplib, sys
args, sender, rcpts = sys.argv[1:], "", []
while args:
    arg = args.pop(0)
    if arg == "-f":
        sender = args.pop(0)
    elif arg.startswith("-f"):
        sender = arg[2:]
    elif arg == "--":
        rcpts += args
        break
    elif not arg.startswith("-"):
        rcpts.append(arg)
sender = sender.strip("<>")
if sender and "@" not in sender:
    sender += "@{domain}"  # qualified, as an MTA's submission does (myorigin)
data = sys.stdin.buffer.read().replace(b"\\r\\n", b"\\n")
head = data.partition(b"\\n\\n")[0].lower()
# What an MTA's cleanup adds to a submitted message without them (Postfix's cleanup(8)).
if not head.startswith(b"date:") and b"\\ndate:" not in head:
    data = ("Date: " + email.utils.formatdate() + "\\n").encode() + data
if not head.startswith(b"message-id:") and b"\\nmessage-id:" not in head:
    data = ("Message-ID: " + email.utils.make_msgid(domain="{domain}") + "\\n").encode() + data
with smtplib.SMTP("{host}", {port}) as client:
    client.sendmail(sender, rcpts, data.replace(b"\\n", b"\\r\\n"))
"""


def _passwd() -> Path:
    lines = subprocess.run(["getent", "passwd"], check=True, capture_output=True, text=True)
    passwd = lines.stdout.splitlines()
    homes = ROOT / "home"
    if homes.exists():
        shutil.rmtree(homes)
    for user, text in USERS.items():
        home = homes / user
        home.mkdir(parents=True)
        (home / ".vacation.msg").write_text(text, "utf-8")
        passwd.append(f"{user}:x:{NOBODY}:{NOBODY}::{home}:/bin/sh")
    path = ROOT / "passwd"
    path.write_text("\n".join(passwd) + "\n")
    return path


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA)
    version = extract(PACKAGES, ROOT / "root")["vacation"]
    binary = ROOT / "root/usr/bin/vacation"
    wrapper = ROOT / "sendmail"
    wrapper.write_text(
        SENDMAIL.format(host=destination.host, port=destination.capture_port, domain=DOMAIN)
    )
    wrapper.chmod(0o755)
    mounts = [Bind(_passwd(), "/etc/passwd"), Bind(wrapper, "/usr/sbin/sendmail")]
    for user in USERS:  # each user's database, as vacation -i makes it
        subprocess.run(isolated([str(binary), "-i", user], mounts), env=ENV, check=True)
    for number, case in enumerate(built, start=1):
        user = case.recipients[-1].partition("@")[0]
        stamp = datetime.now(UTC).strftime("%a %b %d %H:%M:%S %Y")
        raw = (
            f"From {case.sender}  {stamp}\n"
            f"Return-Path: <{case.sender}>\n"
            f"Delivered-To: {case.recipients[-1]}\n"
        ).encode() + message(case, number).replace(b"\r\n", b"\n")
        done = subprocess.run(isolated([str(binary), user], mounts), input=raw, env=ENV,
                              capture_output=True, timeout=30)  # fmt: skip
        if done.returncode != 0:
            with (out.parent / f"{MTA}.log").open("ab") as log:
                log.write(done.stderr)
        time.sleep(0.2)
    return collect(destination, built, out, MTA, f"vacation {version}", TIMEOUT)
