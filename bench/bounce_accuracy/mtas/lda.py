"""Local delivery agents run for real behind an MTA under test (round 39): procmail, maildrop
and Dovecot's LDA from Debian 12's packages, unpacked under ``/tmp/mta-lda/root`` (never
installed), called by the MTA's own local delivery as a command of its alias table
(``|/usr/bin/procmail ...``), so the notice quotes what the program says and the exit status
it ends with.

Each MTA runs in a mount namespace of its own where the unpacked ``usr`` is laid over the
system's (``/usr/bin/procmail``, ``/usr/bin/maildrop``, ``/usr/lib/dovecot/dovecot-lda`` found
where Debian puts them; the system's ``/usr`` is not changed) and a tiny tmpfs, filled to its
last byte, is mounted at ``<base>/full`` (a full disk; it goes with the namespace). The
commands run as ``nobody`` (Postfix's ``default_privs``, Sendmail's ``DefaultUser``) or as
Exim's own user (Exim given ``-C`` keeps no other): the mailboxes and filters are theirs.

The local parts (``aliases``), each failing in one way by construction:

    nadia.holm   procmail -d for a user the system does not have (EX_NOUSER, 67)
    omar.voss    maildrop -d for a user the system does not have (67)
    lena.frost   dovecot-lda -d for a user its userdb does not have (67)
    greta.lind   maildrop delivering to a maildir over its maildirquota (75 at every try)
    jana.kolar   dovecot-lda -e for a user over her Dovecot quota (77, or 75 as it decides)
    mira.sand    procmail delivering to a folder it cannot write (permissions)
    felix.horn   procmail delivering to an mbox on the full tmpfs
    ida.west     maildrop delivering to a maildir on the full tmpfs
    karl.ott     the user's procmailrc ends with EXITCODE=77 (a refusal, no words)
    lisa.moor    the user's maildrop filter echoes a refusal and exits 77
    theo.falk    the user's procmailrc ends with EXITCODE=75 (a temporary failure, no words)
    kai.brandt   a delivery program that is not there (the shell's "not found", 127)
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from . import dovecot
from .host import Mount, Overlay, Tmpfs
from .packages import extract

ROOT = Path("/tmp/mta-lda")
PACKAGES = [
    "procmail",
    "maildrop",
    "courier-authlib",
    "libcourier-unicode4",
    "libgdbm6",
    "libpcre3",
    "dovecot-core",
    "dovecot-lmtpd",
]
NOBODY = 65534
DOVECOT_USERS = ("jana.kolar",)  # lena.frost has no entry: unknown to Dovecot's userdb
# ida.west's maildir on the full disk, made before it is filled
FULL_MAILDIR = ("ida.west/cur", "ida.west/new", "ida.west/tmp")


def unpack() -> str:
    """The LDAs unpacked under ``ROOT/root``; their versions, for a row's ``mta_version``."""
    root = ROOT / "root"
    versions = extract(PACKAGES, root)
    # libpcre3 ships under /lib (Debian 12 is merged-/usr): its library beside the others.
    usr_lib = root / "usr/lib/x86_64-linux-gnu"
    for library in (root / "lib/x86_64-linux-gnu").glob("libpcre.so*"):
        target = usr_lib / library.name
        if not target.exists():
            shutil.copy(library, target, follow_symlinks=False)
    names = ("procmail", "maildrop", "dovecot-core")
    return " ".join(f"{name} {versions[name]}" for name in names)


def mounts(base: Path) -> list[Mount]:
    """What the MTA's namespace needs: the unpacked ``usr`` over the system's, the full disk."""
    return [Overlay("/usr", lower=ROOT / "root/usr"), Tmpfs(base / "full", folders=FULL_MAILDIR)]


def furnish(base: Path, dovecot_port: int, owner: int = NOBODY) -> dict[str, str]:
    """A fresh ``base`` (mailboxes, filters, the Dovecot root, the full disk's mount point)
    and the alias table's commands, by local part; the mailboxes and filters are ``owner``'s,
    the user the MTA runs the commands as. Dovecot's LDA asks Dovecot's auth service
    for its user: the MTA's module runs Dovecot (``dovecot.running``, listening on
    ``dovecot_port``) beside the MTA, ``base/dovecot`` its root."""
    if base.exists():
        shutil.rmtree(base)
    mail, filters, full = base / "mail", base / "filters", base / "full"
    for folder in (mail, filters, full):
        folder.mkdir(parents=True)
    mail.chmod(0o1777)
    locked = mail / "locked"
    locked.mkdir()
    locked.chmod(0o555)  # root's, and nobody may not write in it
    quota = mail / "greta.lind"
    for sub in ("cur", "new", "tmp"):
        (quota / sub).mkdir(parents=True)
    # a maildirquota of 20,000 bytes, 30,000 already counted (maildirmake -q's file)
    (quota / "maildirsize").write_text("20000S\n30000 3\n")
    rcs = {
        "mira.sand": f"DEFAULT={locked}/mira.sand\n",
        "felix.horn": f"DEFAULT={full}/felix.horn\n",
        "karl.ott": "EXITCODE=77\n\n:0\n/dev/null\n",
        "theo.falk": "EXITCODE=75\n\n:0\n/dev/null\n",
    }
    for user, text in rcs.items():
        (filters / f"{user}.procmailrc").write_text(text)
    drops = {
        "greta.lind": f'to "{quota}/"\n',
        "ida.west": f'to "{full}/ida.west/"\n',
        "lisa.moor": (
            'echo "Sorry, no mail from this sender is accepted here."\nEXITCODE=77\nexit\n'
        ),
    }
    for user, text in drops.items():
        (filters / f"{user}.mailfilter").write_text(text)
    for path in (quota, *quota.rglob("*"), *filters.iterdir()):
        os.lchown(path, owner, owner)
    for path in filters.iterdir():
        path.chmod(0o600)  # maildrop refuses a filter others may read or write
    config = dovecot.configure(
        base / "dovecot", dovecot.CONFIG, DOVECOT_USERS, _over_quota, port=dovecot_port,
        quota=dovecot.QUOTA, max_mail_size=dovecot.MAX_MAIL_SIZE,
    )  # fmt: skip
    # dovecot.running lays the packages unpacked under <its root>/root over /usr: the LDAs'
    (base / "dovecot/root").symlink_to(ROOT / "root")
    log = base / "dovecot/dovecot.log"
    log.touch()
    os.chown(log, owner, owner)  # dovecot-lda, run as the owner, logs there
    if owner != NOBODY:  # Dovecot's users are the owner's (dovecot-lda cannot change its uid)
        users = base / "dovecot/etc/users"
        users.write_text(users.read_text().replace(f":{NOBODY}:{NOBODY}:", f":{owner}:{owner}:"))
        for path in (base / "dovecot/mail", *(base / "dovecot/mail").rglob("*")):
            os.lchown(path, owner, owner)
    lda = f"/usr/lib/dovecot/dovecot-lda -c {config}"
    return {
        "nadia.holm": "/usr/bin/procmail -d nadia.holm",
        "omar.voss": "/usr/bin/maildrop -d omar.voss",
        "lena.frost": f"{lda} -d lena.frost",
        "greta.lind": f"/usr/bin/maildrop {filters}/greta.lind.mailfilter",
        "jana.kolar": f"{lda} -e -d jana.kolar",
        "mira.sand": f"/usr/bin/procmail -m {filters}/mira.sand.procmailrc",
        "felix.horn": f"/usr/bin/procmail -m {filters}/felix.horn.procmailrc",
        "ida.west": f"/usr/bin/maildrop {filters}/ida.west.mailfilter",
        "karl.ott": f"/usr/bin/procmail -m {filters}/karl.ott.procmailrc",
        "lisa.moor": f"/usr/bin/maildrop {filters}/lisa.moor.mailfilter",
        "theo.falk": f"/usr/bin/procmail -m {filters}/theo.falk.procmailrc",
        "kai.brandt": "/usr/local/bin/deliver-mail kai.brandt",
    }


def _over_quota(user: str, home: Path) -> None:
    stored = home / "Maildir/cur" / f"1764979200.M1P1.mx,S={dovecot.OVER_QUOTA}:2,S"
    stored.write_bytes(b"Subject: old\n\n" + b"x" * (dovecot.OVER_QUOTA - 15) + b"\n")
