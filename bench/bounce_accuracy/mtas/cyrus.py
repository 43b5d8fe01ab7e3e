"""Cyrus IMAP's LMTP server run for real, as the mailbox server behind an MTA under test
(round 50): Debian 12's ``cyrus-common`` and ``cyrus-imapd`` 3.6.1-4+deb12u5 (BSD-style
licence), with the three libraries the system lacks (``libical3``, ``libxapian30``,
``libpcre3``), unpacked under ``/tmp/mta-cyrus/root`` (never installed) and found through
``LD_LIBRARY_PATH``. Round 23 could only script lmtpd's words (``lmtp.py``); here they are its
own.

Each run has a folder of its own (``/tmp/mta-cyrus/<mta>``): an ``imapd.conf`` (every path
under that folder, ``cyrus_user`` nobody, ``virtdomains`` off so an address's domain is
ignored, Sieve scripts under ``sievedir``, Sieve's replies submitted over SMTP to the MTA
under test: ``smtp_backend: host``) and a ``cyrus.conf`` whose ``master`` starts ``imapd``
and two ``lmtpd -a`` (preauthorised: the MTAs do not authenticate over LMTP). The second
``lmtpd`` reads a second ``imapd.conf``, the first's with ``lmtp_over_quota_perm_failure: yes``
and ``sieve_use_lmtp_reject: no``: a mailbox over quota refused for good rather than for now,
and a Sieve ``reject`` sent as a notice of Cyrus's own (RFC 5429's MDN) rather than answered in
the LMTP reply. Nothing needs Cyrus's compiled-in paths: every program is given ``-C``.

The mailboxes are made through Cyrus's own ``imapd`` as its admin (``cyrus``; the password
check is SASL's ``alwaystrue`` on loopback): ``CREATE``, ``SETQUOTA``, ``SETACL``, ``APPEND``
(``furnish``). Each user's Sieve script is compiled with Cyrus's ``sievec`` and made active
(``defaultbc``) in the folder lmtpd reads for that mailbox (``<sievedir>/uuid/<a>/<b>/<id>``,
the mailbox's unique id as ``CREATE`` answers it). The users (``MAILBOXES``):

- ``ana.berg``: an ordinary mailbox (delivered);
- ``tomas.lind``: a 3,000-byte message already in it, then a 1 KB storage quota;
- ``mira.solberg``: Sieve ``reject`` (RFC 5429); ``jonas.eklund``: ``ereject``;
- ``ola.brekke``: Sieve ``vacation`` (RFC 5230);
- ``board``: a shared mailbox that anyone may read but not post to (``anyone lrs``), its
  address ``bb+board`` (``postuser: bb``).

Any other local part (one too long, one with characters no mailbox name has) has no mailbox.
"""

from __future__ import annotations

import imaplib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .host import ENV, listening, wait_listening
from .packages import extract
from .packages import version as deb_version

PACKAGES = ["cyrus-common", "cyrus-imapd", "libical3", "libxapian30", "libpcre3"]
ROOT = Path("/tmp/mta-cyrus")
BIN = ROOT / "root/usr/lib/cyrus/bin"
LIBS = f"{ROOT}/root/usr/lib/x86_64-linux-gnu:{ROOT}/root/lib/x86_64-linux-gnu"
NOBODY = 65534
ADMIN = "cyrus"

# What every Cyrus here is ({folder}: the run's own; {smtp}: the MTA's port for Sieve's mail).
IMAPD_CONF = """\
configdirectory: {folder}/lib
defaultpartition: default
partition-default: {folder}/spool
sievedir: {folder}/sieve
proc_path: {folder}/proc
mboxname_lockpath: {folder}/lock
lmtpsocket: {folder}/socket/lmtp
idlesocket: {folder}/socket/idle
notifysocket: {folder}/socket/notify
servername: {servername}
cyrus_user: nobody
admins: {admin}
sasl_pwcheck_method: alwaystrue
allowplaintext: yes
virtdomains: off
unixhierarchysep: yes
altnamespace: no
lmtp_downcase_rcpt: yes
sieveusehomedir: false
postuser: bb
delete_mode: immediate
smtp_backend: host
smtp_host: 127.0.0.1:{smtp}
"""
# The second lmtpd's: a mailbox over quota refused for good, Sieve's reject sent as an MDN.
SECOND = "lmtp_over_quota_perm_failure: yes\nsieve_use_lmtp_reject: no\n"

CYRUS_CONF = """\
START {{
  recover cmd="{bin}/ctl_cyrusdb -C {conf} -r"
}}
SERVICES {{
  imap cmd="{bin}/imapd -C {conf}" listen="127.0.0.1:{imap}" prefork=0
  lmtp cmd="{bin}/lmtpd -C {conf} -a" listen="127.0.0.1:{lmtp}" prefork=0
  lmtpsecond cmd="{bin}/lmtpd -C {second} -a" listen="127.0.0.1:{lmtp_second}" prefork=0
}}
EVENTS {{
}}
"""

OVER_QUOTA = 3_000  # bytes of the message already in tomas.lind's mailbox, over its 1 KB
MAILBOXES = ("ana.berg", "tomas.lind", "mira.solberg", "jonas.eklund", "ola.brekke")
SHARED = "board"  # anyone may read it (lrs), nobody may post (no p): bb+board is refused

VACATION = (
    'require "vacation";\n'
    "vacation :days 7 :addresses [{addresses}]\n"
    '  "I am out of the office until 4 January and will read your message when I am back.";\n'
)
SCRIPTS = {
    "mira.solberg": 'require "reject";\nreject "Messages from this sender are not accepted.";\n',
    "jonas.eklund": (
        'require "ereject";\nereject "I did not subscribe to this list. Please take me off it.";\n'
    ),
}


def unpack() -> str:
    """Cyrus's packages unpacked under ``/tmp/mta-cyrus/root``, only if they are not there
    (unpacking again would replace the libraries under another module's running lmtpd);
    cyrus-imapd's version."""
    debs = sorted((ROOT / "root/debs").glob("cyrus-imapd_*.deb"))
    if debs and (BIN / "lmtpd").exists() and (BIN / "imapd").exists():
        return deb_version(debs[-1])
    return extract(PACKAGES, ROOT / "root")["cyrus-imapd"]


def _env() -> dict[str, str]:
    return {**ENV, "LD_LIBRARY_PATH": LIBS}


def configure(folder: Path, servername: str, ports: tuple[int, int, int], smtp: int) -> Path:
    """A fresh run folder: its databases', spool's, Sieve's and sockets' folders (owned by
    nobody), the two ``imapd.conf`` and ``cyrus.conf``, whose path is returned. ``ports``:
    imapd's, the first lmtpd's, the second's."""
    if folder.exists():
        shutil.rmtree(folder)
    for sub in ("lib", "spool", "sieve", "proc", "lock", "socket"):
        (folder / sub).mkdir(parents=True)
    conf, second = folder / "imapd.conf", folder / "imapd-second.conf"
    text = IMAPD_CONF.format(folder=folder, servername=servername, admin=ADMIN, smtp=smtp)
    conf.write_text(text)
    second.write_text(text + SECOND)
    imap, lmtp, lmtp_second = ports
    cyrus_conf = folder / "cyrus.conf"
    cyrus_conf.write_text(
        CYRUS_CONF.format(bin=BIN, conf=conf, second=second, imap=imap, lmtp=lmtp,
                          lmtp_second=lmtp_second)
    )  # fmt: skip
    for path in (folder, *folder.rglob("*")):
        os.lchown(path, NOBODY, NOBODY)
    return cyrus_conf


def furnish(folder: Path, imap: int, addresses: list[str]) -> None:
    """The mailboxes, quota, access list, old message and Sieve scripts of ``MAILBOXES``,
    made through imapd as Cyrus's admin; ``addresses`` are the vacation user's own (the
    MTAs' domains for her)."""
    client = imaplib.IMAP4("127.0.0.1", imap)
    try:
        _ok(client.login(ADMIN, "any"))  # alwaystrue: any password
        ids = {}
        for user in MAILBOXES:
            ids[user] = _created(client, f"user/{user}")
        _created(client, SHARED)
        _ok(client.setacl(SHARED, "anyone", "lrs"))
        # the old message first (the admin may insert while he holds i), then the quota
        _ok(client.setacl("user/tomas.lind", ADMIN, "lrswipkxtecda"))
        old = b"Subject: old\r\n\r\n" + b"x" * (OVER_QUOTA - 16) + b"\r\n"
        _ok(client.append("user/tomas.lind", "", "", old))
        _ok(client.deleteacl("user/tomas.lind", ADMIN))
        _ok(client.setquota("user/tomas.lind", "(STORAGE 1)"))
    finally:
        client.logout()
    scripts = {
        **SCRIPTS,
        "ola.brekke": VACATION.format(addresses=", ".join(f'"{a}"' for a in addresses)),
    }
    for user, text in scripts.items():
        mailbox_id = ids[user]
        where = folder / "sieve/uuid" / mailbox_id[0] / mailbox_id[1] / mailbox_id
        where.mkdir(parents=True)
        (where / "filter.script").write_text(text)
        subprocess.run(
            [str(BIN / "sievec"), "-C", str(folder / "imapd.conf"), str(where / "filter.script"),
             str(where / "filter.bc")],
            check=True, env=_env(), capture_output=True,
        )  # fmt: skip
        (where / "defaultbc").symlink_to("filter.bc")
    for path in (folder / "sieve", *(folder / "sieve").rglob("*")):
        os.lchown(path, NOBODY, NOBODY)


def _created(client: imaplib.IMAP4, mailbox: str) -> str:
    """``mailbox`` created; its unique id, as Cyrus answers ``CREATE``."""
    typ, data = client.create(mailbox)
    _ok((typ, data))
    found = re.search(rb"MAILBOXID \(([^)]+)\)", data[0] or b"")
    if found is None:
        raise RuntimeError(f"Cyrus gave no mailbox id for {mailbox}: {data!r}")
    return found.group(1).decode()


def _ok(answer: object) -> None:
    """Raise unless imaplib's ``(typ, data)`` answer is ``OK`` (typeshed types ``append``'s
    answer as a ``str``; at run time it is the same pair as the others')."""
    typ = answer[0] if isinstance(answer, tuple) else answer
    if typ != "OK":
        raise RuntimeError(f"Cyrus's imapd refused: {answer!r}")


@contextmanager
def running(
    folder: Path,
    servername: str,
    ports: tuple[int, int, int],
    smtp: int,
    addresses: list[str],
) -> Iterator[None]:
    """Cyrus's ``master`` in the foreground (its output to ``folder/master.log``) with a fresh
    folder (``configure``) and its mailboxes (``furnish``), once imapd and both lmtpd listen;
    stopped with its process group on leaving."""
    cyrus_conf = configure(folder, servername, ports, smtp)
    command = [str(BIN / "master"), "-C", str(folder / "imapd.conf"), "-M", str(cyrus_conf),
               "-p", str(folder / "master.pid"), "-D"]  # fmt: skip
    imap, lmtp, lmtp_second = ports
    with listening(command, imap, "Cyrus", folder / "master.log", env=_env()):
        wait_listening(lmtp, "Cyrus's lmtpd")
        wait_listening(lmtp_second, "Cyrus's second lmtpd")
        furnish(folder, imap, addresses)
        yield
