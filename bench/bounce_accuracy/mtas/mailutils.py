"""GNU Mailutils' delivery agents run for real behind an MTA under test (round 62): ``mda``, the
local delivery agent an MTA runs as a command, and ``lmtpd``, its LMTP server, from Debian 12's
``mailutils-mda`` 1:3.15-4 (GPL-3.0-or-later: only run, nothing of it copied), with the
libraries the system lacks (:data:`PACKAGES`), unpacked under :data:`ROOT` (never installed).

Both read Mailutils' site-wide configuration, ``/etc/mailutils.conf``, a compiled-in path: each
runs in a mount namespace where the unpacked ``usr`` is laid over the system's and ``/etc`` is
seen through a read-only overlay holding the run's own ``mailutils.conf``, ``passwd`` and
``group`` (the base's users and this module's, :data:`USERS`; the system's files unchanged).
``mda`` runs in the MTA's namespace (:func:`mounts`), ``lmtpd`` in one of its own
(:func:`lmtpd`). The configuration (:data:`CONF`): users by the system's passwd lookup (the
namespace's), each mailbox an mbox in the run's spool, a DBM quota database (``quota``), the
user's Sieve script at ``<base>/sieve/<user>.sv`` (:func:`script`: given on the command line, as
``--script``; Mailutils 3.15 keeps a pointer to the configuration's ``script { pattern }``
string, freed once the file is parsed, so the pattern read from the file came out as the
message's own text, "stat(<the message's headers>) failed: File name too long" in ``mda``'s
output under Postfix, and no script ran), Sieve's own mail (a ``reject``) submitted over SMTP to the
MTA under test (``mailer``), and diagnostics on standard error rather than syslog (the MTA
quotes them; nothing is written to the machine's log). A second ``lmtpd`` adds ``quota {
exit-tempfail yes; }``: a mailbox over quota refused for now rather than for good.

The local parts, each failing in one way by construction (any other has no account):

    ana.berg      an ordinary mailbox (delivered)
    tomas.lind    3,000 bytes in the mailbox, 1 KB in the quota database: over quota
    eva.dahl      a quota 50 bytes over what the mailbox holds: the message would exceed it
    lena.frost    a mailbox file of root's, mode 0600: the delivering user cannot open it
    mira.solberg  a Sieve script that rejects every message (RFC 5429 ``reject``)

Round 75 runs ``mda`` in another language (:data:`LANGUAGES`, Mailutils' own catalogues in
mailutils-common): :func:`language` builds the locale with ``localedef`` into a private
``LOCPATH`` (:data:`LOCALES`; nothing installed) and prefixes the command with ``env LANG=...``;
:func:`in_languages` runs one MTA module's :class:`Run` once per locale (:data:`LANGUAGES`, or
:data:`MORE_LANGUAGES` for the ``mailutils_i18n_more_*`` modules).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .cases import I18N_CASES, Case, load
from .destination import Destination
from .host import ENV, Mount, Overlay, isolated, listening
from .packages import extract
from .packages import version as deb_version
from .rows import Row

ROOT = Path("/tmp/mta-r62-mailutils")
I18N_ROOT = Path("/tmp/r75-mailutils")  # round 75's runs in other languages
LOCALES = Path("/tmp/r75-locales")  # the LOCPATH of the locales built for them
# the locales round 75 runs mda in, each with a catalogue in mailutils-common 1:3.15-4: the five
# its rules were written for, and the catalogue's other ten, kept unseen
LANGUAGES = ("de_DE", "fr_FR", "es_ES", "pt_BR", "ru_RU")
MORE_LANGUAGES = ("ca_ES", "da_DK", "fi_FI", "id_ID", "pl_PL", "ro_RO", "sr_RS", "sv_SE", "uk_UA",
                  "vi_VN")  # fmt: skip
PACKAGES = [
    "mailutils-mda",
    "libmailutils9",
    "libmu-dbm9",
    "mailutils-common",
    "guile-3.0-libs",
    "libgc1",
    "libkyotocabinet16v5",
    "libltdl7",
    "libgsasl18",
    "libntlm0",
    "libidn12",
    "liblzo2-2",
    "libgssglue1",
    "libmariadb3",
    "libpq5",
    "libpython3.11",
    "gdbmtool",  # writes the quota database (GNU DBM, one of the formats Mailutils reads)
]
NOBODY = 65534
OVER_QUOTA = 3_000  # bytes of the old message in tomas.lind's and eva.dahl's mailboxes
USERS = ("ana.berg", "tomas.lind", "eva.dahl", "lena.frost", "mira.solberg")
SIEVE_REJECT = 'require "reject";\nreject "Messages from this sender are not accepted.";\n'

CONF = """\
logging {{ syslog no; }};
mailbox {{ mail-spool "{base}/spool"; }};
quota {{ database "gdbm://{base}/quota/quota.db";{tempfail} }};
mailer {{ url "smtp://127.0.0.1:{smtp}"; }};
{listen}"""


def unpack() -> str:
    """The packages unpacked under ``ROOT/root``, only if they are not there (unpacking again
    would replace the libraries under another module's running lmtpd); mailutils-mda's
    version."""
    root = ROOT / "root"
    debs = sorted((root / "debs").glob("mailutils-mda_*.deb"))
    if debs and (root / "usr/sbin/lmtpd").exists() and (root / "usr/bin/gdbmtool").exists():
        return deb_version(debs[-1])
    versions = extract(PACKAGES, root)
    # Debian 12 is merged-/usr: the libraries shipped under /lib go beside the others.
    usr_lib = root / "usr/lib/x86_64-linux-gnu"
    for library in (root / "lib/x86_64-linux-gnu").glob("*.so*"):
        target = usr_lib / library.name
        if not target.exists():
            shutil.copy(library, target, follow_symlinks=False)
    return versions["mailutils-mda"]


def furnish(
    base: Path, smtp: int, passwd: Path, group: Path, owner: int = NOBODY, *,
    tempfail: bool = False, listen: int = 0,
) -> Path:  # fmt: skip
    """A fresh ``base``: the spool, the users' homes and Sieve scripts, the quota database
    (``owner``'s: Mailutils reads it as the delivering user) and ``base/etc``, the folder laid
    over ``/etc`` (``mailutils.conf``; ``passwd`` and ``group`` copied from the base files
    given, with :data:`USERS` added as ``owner``). ``listen``: lmtpd's port; ``tempfail``:
    over quota refused for now. Returns ``base/etc``."""
    if base.exists():
        shutil.rmtree(base)
    spool, quota, etc, home = base / "spool", base / "quota", base / "etc", base / "home"
    sieve = base / "sieve"
    for folder in (spool, quota, etc, home, sieve):
        folder.mkdir(parents=True)
    spool.chmod(0o1777)
    old = b"From old@sender.test Thu Dec  3 10:00:00 2026\nSubject: old\n\n"
    old += b"x" * (OVER_QUOTA - len(old) - 2) + b"\n\n"
    for user in ("tomas.lind", "eva.dahl"):
        (spool / user).write_bytes(old)
        os.chown(spool / user, owner, owner)
        (spool / user).chmod(0o600)
    locked = spool / "lena.frost"
    locked.write_bytes(b"")
    locked.chmod(0o600)  # root's: the delivering user may not open it
    lines = []
    for user in USERS:
        (home / user).mkdir()
        lines.append(f"{user}:x:{owner}:{owner}:{user}:{home / user}:/usr/sbin/nologin")
    (sieve / "mira.solberg.sv").write_text(SIEVE_REJECT)
    for path in (home, *home.rglob("*"), sieve, *sieve.rglob("*")):
        os.lchown(path, owner, owner)
    database = quota / "quota.db"
    gdbmtool = ROOT / "root/usr/bin/gdbmtool"
    env = {**ENV, "LD_LIBRARY_PATH": str(ROOT / "root/usr/lib/x86_64-linux-gnu")}
    limits = (("tomas.lind", "1K"), ("eva.dahl", str(OVER_QUOTA + 50)))
    for number, (user, limit) in enumerate(limits):
        create = ["-n"] if number == 0 else []  # -n makes a new database
        subprocess.run([str(gdbmtool), "-q", *create, str(database), "store", user, limit],
                       check=True, env=env, capture_output=True)  # fmt: skip
    # Mailutils' safety check wants the database owned by the program's real user, and reads
    # it as the recipient: one user for both (lmtpd run by root could not read it)
    for path in (quota, database):
        os.chown(path, owner, owner)
    quota.chmod(0o755)
    database.chmod(0o600)  # Mailutils' safety checks refuse a database others may read
    (etc / "passwd").write_text(passwd.read_text().rstrip("\n") + "\n" + "\n".join(lines) + "\n")
    shutil.copy(group, etc / "group")
    (etc / "mailutils.conf").write_text(
        CONF.format(
            base=base, smtp=smtp, tempfail=" exit-tempfail yes;" if tempfail else "",
            listen=f'listen "inet://127.0.0.1:{listen}";\n' if listen else "",
        )
    )  # fmt: skip
    return etc


def script(base: Path) -> str:
    """The option naming the users' Sieve scripts of ``base`` (:func:`furnish`'s), for ``mda``
    and ``lmtpd``."""
    return f"--script={base}/sieve/%u.sv"


def mounts(etc: Path) -> list[Mount]:
    """What a namespace running Mailutils needs: the unpacked ``usr`` over the system's, and
    ``etc`` (:func:`furnish`'s) over ``/etc``."""
    return [Overlay("/usr", lower=ROOT / "root/usr"), Overlay("/etc", lower=etc)]


@dataclass(frozen=True)
class Run:
    """One run of an MTA in front of Mailutils: ``mta``, its rows' name; ``instance``, the MTA's
    own folder; ``base``, :func:`furnish`'s (the two lmtpds' folders beside it); ``port``, the
    MTA's listener, the two lmtpds on the next two ports; ``lang``, a locale (``de_DE``) that mda
    and lmtpd run in, or none (round 62's)."""

    mta: str
    instance: Path
    base: Path
    port: int
    lang: str = ""

    @property
    def lmtpd_ports(self) -> tuple[int, int]:
        return self.port + 1, self.port + 2

    def version(self, mta_version: str) -> str:
        """The rows' version: the MTA's, Mailutils', and the locale run in."""
        locale = f" (LANG={self.lang}.UTF-8)" if self.lang else ""
        return f"{mta_version}; mailutils-mda {unpack()}{locale}"


def language(lang: str) -> list[str]:
    """What runs a command in ``lang``'s locale (``env LANG=<lang>.UTF-8 LOCPATH=...``), the
    locale built into :data:`LOCALES` first if it is not there; nothing for no ``lang``."""
    if not lang:
        return []
    name = f"{lang}.UTF-8"
    if not (LOCALES / name / "LC_MESSAGES").exists():
        LOCALES.mkdir(parents=True, exist_ok=True)
        subprocess.run(["localedef", "-i", lang, "-f", "UTF-8", str(LOCALES / name)],
                       check=True, capture_output=True, env=ENV)  # fmt: skip
    return ["/usr/bin/env", f"LANG={name}", f"LOCPATH={LOCALES}"]


def in_languages(
    out: Path,
    destination: Destination,
    mta: str,
    port: int,
    deliver: Callable[[Path, Destination, list[Case], Run], list[Row]],
    languages: tuple[str, ...] = LANGUAGES,
) -> list[Row]:
    """``deliver`` (an MTA module's run) once for each of ``languages``, one after another, with
    the cases of ``i18n_cases.yaml`` named after that locale (``de_DE-mda-...``), the MTA's
    instance and Mailutils' base under :data:`I18N_ROOT`, the MTA on ``port``."""
    family = mta.rsplit("_", 1)[-1]
    built = load(mta, I18N_CASES)
    rows: list[Row] = []
    for lang in languages:
        cases = [case for case in built if case.name.startswith(f"{lang}-")]
        run = Run(mta, I18N_ROOT / f"{family}-mta", I18N_ROOT / family, port, lang)
        rows += deliver(out, destination, cases, run)
    return rows


@contextmanager
def lmtpds(run: Run, smtp: int) -> Iterator[None]:
    """The two lmtpds of ``run`` (the second with quota exit-tempfail), Sieve's mail to the MTA
    on ``smtp``."""
    first, second = run.lmtpd_ports
    folder = run.base.parent
    with (
        lmtpd(folder / f"{run.mta}-lmtpd", first, smtp, lang=run.lang),
        lmtpd(folder / f"{run.mta}-lmtpd2", second, smtp, tempfail=True, lang=run.lang),
    ):
        yield


@contextmanager
def lmtpd(
    base: Path, port: int, smtp: int, *, tempfail: bool = False, lang: str = ""
) -> Iterator[None]:
    """Mailutils' ``lmtpd`` (a daemon in the foreground, its output to ``<base>.log``) on
    127.0.0.1:``port`` in a namespace of its own, with a fresh ``base`` (:func:`furnish`, the
    system's passwd and group), run as ``nobody`` (the users' own uid; group ``mail``, which
    lmtpd sets itself at its start), in ``lang``'s locale with one (its replies stay English:
    only its log is translated); stopped with its process group on leaving."""
    etc = furnish(base, smtp, Path("/etc/passwd"), Path("/etc/group"), tempfail=tempfail,
                  listen=port)  # fmt: skip
    run_as = ["setpriv", f"--reuid={NOBODY}", "--regid=mail", "--clear-groups"]
    lmtpd = [*language(lang), "/usr/sbin/lmtpd", "--daemon", "--foreground", "--stderr",
             script(base)]  # fmt: skip
    command = isolated([*run_as, *lmtpd], mounts(etc))
    with listening(command, port, "Mailutils' lmtpd", base.parent / f"{base.name}.log", env=ENV):
        yield
