"""A procmail-based mailing list manager's answers (round 58): SmartList 3.15 (Debian 12's
``smartlist`` ``3.15-26`` with ``procmail`` ``3.22-27``, GPL: only run, nothing of them
enters this repository), unpacked under ``/tmp/mta-smartlist/root`` (``apt-get download`` and
``dpkg -x``; never installed).

SmartList lives in its home ``/var/list`` (``flist``, its setuid entry point, changes to that
compiled-in folder and runs ``procmail`` with the lists' rc files, as the owner of the list's
folder): it runs in a mount namespace of its own where ``/var`` is seen through a writable
layer under ``/tmp/mta-smartlist/run`` holding ``list`` (the package's ``/var/list`` copied,
owned by the system's ``list`` user, uid 38, which Debian's base system has). Its ``rc.init``
is the package's ``rc.init.dist`` with its documented edits (``domain``, ``listmaster``) and
``SENDMAIL`` set to a small script of ours (:data:`SENDMAIL_SCRIPT`) that hands each message
over SMTP, as SmartList wrote it (line ends made CRLF), to the capture server (the sender's
domain, ``sender.test``) or the scripted server (every other: the lists' maintainer). The lists
(:data:`LISTS`) are made with SmartList's own ``createlist`` (``<name> <maintainer>``); each
one's settings are lines of its ``rc.custom`` (its documented variables), a subscriber added to
its ``dist``. Mail comes in as an MTA's alias hands it over (``"|/var/list/.bin/flist
<list>"``, ``createlist``'s own advice): the message, after a ``From_`` line, on ``flist``'s
standard input. The cases are ``smartlist`` in ``smartlist_cases.yaml``; a command case's
message carries its command (:data:`COMMANDS`) as its subject and its one body line. The
bounce-handling case hands an MTA's DSN for a member (the case's sender, on list ``weekly``)
to ``weekly-request``, where ``procbounce`` removes it (``minbounce 1``).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

from .cases import Case, collect, load, message
from .destination import Destination
from .dsn import MAILER_DAEMON, member_dsn
from .host import Namespace, Overlay
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "smartlist"
PACKAGES = ["smartlist", "procmail"]
ROOT = Path("/tmp/mta-smartlist")
RUN = ROOT / "run"
HOME = RUN / "var/list"
DOMAIN = "hazel.test"
LIST_UID = 38  # Debian's ``list`` user and group (base-passwd), SmartList's owner
SENDMAIL = RUN / "sendmail"
TIMEOUT = 60.0  # seconds for every case's answer
ARRIVED = "Sun Dec  6 19:55:00 2026"  # the From_ lines' date
MAINTAINER = "owner@walnut.test"
SUBSCRIBER = "sam.ortiz@walnut.test"
# Each list's lines appended to its rc.custom (SmartList's variables), and its accept.txt
# (what the poster is sent when a post is refused) when it has one: a text of ours, as a list's
# administrator writes it (SmartList ships none).
LISTS: dict[str, dict[str, str]] = {
    "members": {
        "rc": "foreign_submit\n",  # unset: only the accept list (the subscribers) may post
        "accept": "Your message to the members list was not accepted: only subscribers of\n"
        "the list may post to it. Your message follows.\n\n",
    },
    "events": {"rc": "auto_help = yes\n"},
    "weekly": {"rc": "minbounce = 1\n"},
}
# A command case's command (to a list's -request address): its subject and one body line.
COMMANDS = {
    "command-help": "help",
    "command-subscribe": "subscribe",
    "command-unsubscribe-failed": "unsubscribe",
}
BOUNCING = "member-removed"
# The member's DSN as an MTA's alias hands it over (after a ``From_`` line; LF lines).
DSN_ENVELOPE = f"From MAILER-DAEMON  {ARRIVED}\nReturn-Path: <>\n"
DSN_SENDER = f"Mail Delivery System <{MAILER_DAEMON}>"
# SmartList's ``$SENDMAIL``: called as ``sendmail -oem -odb -oi -om -f<list>-request RCPT...``
# or with ``-t`` (the recipients in the message's To:), the message on its standard input (LF
# lines); hands it over SMTP unchanged but for its line ends. ``-q`` (flush the queue): nothing.
SENDMAIL_SCRIPT = """\
#!/usr/bin/python3
import email, smtplib, sys
from email.utils import getaddresses

args, sender, rcpts, headers = sys.argv[1:], "", [], False
while args:
    arg = args.pop(0)
    if arg.startswith("-f"):
        sender = arg[2:] or args.pop(0)
    elif arg == "-t":
        headers = True
    elif arg == "-q":
        sys.exit(0)
    elif not arg.startswith("-"):
        rcpts.append(arg)
raw = sys.stdin.buffer.read()
if headers:
    parsed = email.message_from_bytes(raw)
    rcpts += [a for _, a in getaddresses(parsed.get_all("To", []) + parsed.get_all("Cc", []))]
# in CRLF lines, as an MTA sends a message over SMTP
raw = raw.replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
for rcpt in rcpts:
    port = {capture} if rcpt.lower().endswith("@sender.test") else {remote}
    with smtplib.SMTP("{host}", port, timeout=30) as client:
        client.sendmail(sender, [rcpt], raw)
"""


def _configure(destination: Destination) -> None:
    """A fresh ``run`` folder: the ``/var`` layer with SmartList's home, its ``rc.init`` and
    ``procmail``'s ``formail`` and ``lockfile`` beside its programs (on its ``PATH``)."""
    if RUN.exists():
        shutil.rmtree(RUN)
    (RUN / "var-work").mkdir(parents=True)
    shutil.copytree(ROOT / "root/var/list", HOME, symlinks=True)
    for program in ("formail", "lockfile", "procmail"):
        shutil.copy2(ROOT / f"root/usr/bin/{program}", HOME / ".bin" / program)
    init = (HOME / ".etc/rc.init.dist").read_text()
    init = init.replace("domain=INSERT.YOUR.MAIL.DOMAIN.HERE", f"domain={DOMAIN}", 1)
    init = init.replace("\nlistmaster=", f"\nlistmaster={MAINTAINER}", 1)
    init = init.replace("\ndefaults=.etc\n", f"\ndefaults=.etc\nSENDMAIL={SENDMAIL}\n", 1)
    (HOME / ".etc/rc.init").write_text(init)
    SENDMAIL.write_text(
        SENDMAIL_SCRIPT.format(host=destination.host, capture=destination.capture_port,
                               remote=destination.port)
    )  # fmt: skip
    SENDMAIL.chmod(0o755)


def _make_lists(namespace: Namespace, members: dict[str, str]) -> None:
    """The lists, made by ``createlist`` as SmartList's owner, their settings and subscriber
    (and ``members``: list to address)."""
    namespace.run("chown", "-R", f"{LIST_UID}:{LIST_UID}", "/var/list")
    for name, settings in LISTS.items():
        script = f"cd /var/list && PATH=$PATH:/var/list/.bin .bin/createlist {name} {MAINTAINER}"
        command = namespace.inside("setpriv", f"--reuid={LIST_UID}", f"--regid={LIST_UID}",
                                   "--clear-groups", "sh", "-c", script)  # fmt: skip
        done = subprocess.run(command, capture_output=True, timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"createlist {name}: {done.stderr.decode()[-2000:]}")
        folder = HOME / name
        with (folder / "rc.custom").open("a") as custom:
            custom.write(settings["rc"])
        if "accept" in settings:
            (folder / "accept.txt").write_text(settings["accept"])
        with (folder / "dist").open("a") as dist:
            dist.write(SUBSCRIBER + "\n")
            if name in members:
                dist.write(members[name] + "\n")
    namespace.run("chown", "-R", f"{LIST_UID}:{LIST_UID}", "/var/list")


def _message(case: Case, number: int) -> bytes:
    """The case's message as an MTA's alias hands it to a program (a ``From_`` line first, LF
    lines): a command case's carries its command as its subject and body."""
    raw = message(case, number, COMMANDS.get(case.name))
    envelope = f"From {case.sender}  {ARRIVED}\r\nReturn-Path: <{case.sender}>\r\n"
    return (envelope.encode() + raw).replace(b"\r\n", b"\n")


def _flist(namespace: Namespace, address: str, raw: bytes, what: str) -> None:
    """``raw`` on the standard input of ``flist <list>`` (``<list>-request``), as the alias of
    ``address`` runs it."""
    name = address.partition("@")[0]
    command = namespace.inside("sh", "-c", f"cd /var/list && .bin/flist {name}")
    done = subprocess.run(command, input=raw, capture_output=True, timeout=60)
    if done.returncode != 0:
        logger.warning("%s: flist refused it (%s): %s", what, done.returncode, done.stderr)


def generate(out: Path, destination: Destination) -> list[Row]:
    versions = extract(PACKAGES, ROOT / "root")
    built = load(MTA)
    _configure(destination)
    mounts = [Overlay("/var", upper=RUN / "var")]
    with Namespace(MTA, mounts, grace=10.0) as namespace:
        bouncing = {c.recipients[0].replace("-request@", "@"): c.sender for c in built
                    if c.name == BOUNCING}  # fmt: skip
        _make_lists(namespace, {a.partition("@")[0]: s for a, s in bouncing.items()})
        for number, case in enumerate(built, start=1):
            if case.name == BOUNCING:
                name = case.recipients[0].partition("-request@")[0]
                dsn = member_dsn(case.sender, f"{name}-request@{DOMAIN}", number,
                                 sender=DSN_SENDER, quoted=True)  # fmt: skip
                raw = (DSN_ENVELOPE + dsn).encode()
            else:
                raw = _message(case, number)
            _flist(namespace, case.recipients[0], raw, case.name)
        version = f"SmartList {versions['smartlist']} (procmail {versions['procmail']})"
        return collect(destination, built, out, MTA, version, TIMEOUT)
