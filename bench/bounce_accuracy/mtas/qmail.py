"""qmail's notices (round 42): notqmail, qmail 1.03's public-domain successor, built from source
under ``/tmp/mta-qmail`` (never installed) and run in a mount namespace of its own.

The source is the public repository notqmail/notqmail at :data:`COMMIT`, read from a local git
snapshot (:data:`MIRROR`, or ``$QMAIL_MIRROR``: a folder holding that repository's objects,
e.g. a ``git clone --bare https://github.com/notqmail/notqmail``); ``git archive`` writes it
to ``/tmp/mta-qmail/src``, ``make it man`` builds it with its home compiled in
(``conf-qmail``: ``/tmp/mta-qmail/home``). qmail looks its users up by name (``alias``,
``qmaild``, ``qmaill``, ``qmailp``, ``qmailq``, ``qmailr``, ``qmails``; groups ``qmail`` and
``nofiles``): the system has none, so ``instpackage``/``instchown`` and every run see a copy of
``/etc/passwd`` and ``/etc/group`` adding them, bound over the system's in the namespace
(``host.Bind``; the system's files are never changed), with a private ``/etc/resolv.conf``
naming the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`).

qmail is the final destination of ``greengage.test``: every local part is the ``alias``
user's (``~alias/.qmail-<local>``, dots as colons), each failing in one way (a missing
``.qmail`` file: no mailbox; a program exiting 100 or 111; a maildir it may not enter; a
forward). ``control/smtproutes`` sends ``loquat.test`` to the scripted remote server,
``pawpaw.test`` to a port where nothing listens, ``bullace.test`` to a server that never
greets, ``damson.test`` to qmail's own ``qmail-smtpd`` behind Debian's ``tcpserver``
(ucspi-tcp, unpacked) on :data:`SMTPD_PORT`, with ``rcpthosts``, ``databytes`` and
``badmailfrom`` of its own, and ``sender.test`` (the notices) to the capture server; any other
domain goes by DNS (:data:`TABLE`). Mail is handed to qmail's ``sendmail`` on the command line.
qmail sends no delay warnings; ``control/queuelifetime`` is a minute, and a temporary failure
is returned at the first retry after it: once the minute has passed the module flushes the
queue (:func:`flushing`) rather than wait for qmail's own schedule (a remote retry comes 400 s
after the first try, a local one 100 s).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import IO

from .cases import QMAIL_CASES, Case, collect, load, script_replies, submit_locally
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import ENV, Bind, Namespace, alongside, identities, processes, stop, wait_listening
from .packages import extract, unpack_commit
from .rows import Row

MTA = "qmail"
# The public repository notqmail/notqmail (https://github.com/notqmail/notqmail) at this commit
# ("Bump FreeBSD, NetBSD.", 2024-12-26), its master when the round was made.
COMMIT = "a7012e4fdf2f82f6aa5abe2f57e20831d238d774"
MIRROR = Path(os.environ.get("QMAIL_MIRROR", "/work/.mirror/notqmail+notqmail/repo"))
ROOT = Path("/tmp/mta-qmail")
SRC = ROOT / "src"
HOME = ROOT / "home"  # conf-qmail: compiled into every program
RUN = ROOT / "run"
UCSPI = ROOT / "ucspi"
VERSION = f"notqmail-{COMMIT[:12]}"
LOCAL = "greengage.test"
REMOTE = "loquat.test"
REFUSED = "pawpaw.test"
SILENT = "bullace.test"
SMTPD = "damson.test"
UNLISTED = "sapodilla.test"  # routed to qmail-smtpd, not in its rcpthosts
SMTPD_PORT = 6625  # 2525 + the helper's test port offset (4100)
DNS_ADDRESS = "127.0.0.42"  # the harness's DNS server, an address of this module's own
# The users and groups qmail looks up (conf-users, conf-groups), ids the system does not use.
USERS = {"alias": 64910, "qmaild": 64911, "qmaill": 64912, "qmailp": 64913, "qmailq": 64914,
         "qmailr": 64915, "qmails": 64916}  # fmt: skip
GROUPS = {"qmail": 64910, "nofiles": 64911}
CONTROL = {
    "me": f"mx.{LOCAL}",
    "locals": LOCAL,
    "rcpthosts": f"{LOCAL}\n{SMTPD}",
    "queuelifetime": "60",
    "timeoutremote": "10",
    "timeoutconnect": "5",
    "databytes": "20000",  # qmail-smtpd's limit
    "badmailfrom": "bulletin-qm-21@sender.test",  # qmail-smtpd refuses this sender
}
# The alias user's .qmail files, by local part: what each local address does.
DOT_QMAIL = {
    "ruth.amsel": "|echo 'Sorry, I do not accept mail from this sender.'; exit 100\n",
    "sven.ebbe": "|exit 111\n",
    "tilde.holm": "./locked/\n",  # a maildir the alias user may not enter
    "uwe.kranz": "./Maildir/\n",  # delivered (a loop's Delivered-To names this address)
    "vera.linde": f"&vera.l@{REMOTE}\n",  # a forward the remote server refuses
    "moritz.dahl": '|bouncesaying "This address is no longer in use."\n',  # qmail's own program
    "postmaster": "./Maildir/\n",
}
# The case whose message carries more Received lines than qmail-smtpd's hop limit (100).
HOPS_CASE, HOPS = "qmail-smtpd-hops", 101
TIMEOUT = 180.0  # seconds to wait for the last notice (the lifetime and a retry or two)
FLUSH = 15.0  # seconds between two flushes of the queue once the lifetime has passed

# The DNS cases' domains (names carry no word of the failure); any other name is NXDOMAIN.
TABLE = Table(
    {
        "kumquat.test": Name(),  # the name exists, no MX, no A (NODATA)
        "tamarind.test": Name(rcode=2),  # SERVFAIL on every query
        "mirabelle.test": Name((("MX", "10 mx.mirabelle.test"),)),  # its MX is this host
        "mx.mirabelle.test": Name((("A", "127.0.0.1"),)),
        "lychee.test": Name((("MX", "10 mx.lychee.test"),)),  # mx.lychee.test: NXDOMAIN
    }
)


def built(src: Path = SRC, home: Path = HOME) -> None:
    """notqmail built from :data:`COMMIT` under ``src`` with ``home`` compiled in (once: a
    build of that commit is kept)."""
    stamp = src / ".commit"
    if (src / "qmail-send").exists() and stamp.exists() and stamp.read_text() == COMMIT:
        return
    unpack_commit(MIRROR, COMMIT, src)
    (src / "conf-qmail").write_text(f"{home}\n")
    subprocess.run(["make", "it", "man"], cwd=src, check=True, capture_output=True)
    stamp.write_text(COMMIT)


def accounts(run: Path = RUN, home: Path = HOME) -> tuple[Path, Path]:
    """A copy of the system's ``passwd`` and ``group`` in ``run`` adding qmail's users and
    groups, for a qmail whose home is ``home``."""
    run.mkdir(parents=True, exist_ok=True)
    qmail, nofiles = GROUPS["qmail"], GROUPS["nofiles"]
    users = []
    for name, uid in USERS.items():
        folder = home / "alias" if name == "alias" else home
        gid = qmail if name in ("qmailq", "qmailr", "qmails") else nofiles
        users.append(f"{name}:x:{uid}:{gid}:qmail:{folder}:/usr/sbin/nologin")
    return identities(run, users, (f"{name}:x:{gid}:" for name, gid in GROUPS.items()))


def mounts(run: Path, home: Path, dns: str | None = None) -> list[Bind]:
    """What qmail's namespace lays over the system's: ``run``'s copies of ``passwd`` and
    ``group`` adding its users (:func:`accounts`, for a qmail whose home is ``home``) and, with
    ``dns``, a ``resolv.conf`` naming the DNS server on that address."""
    passwd, group = accounts(run, home)
    laid = [Bind(passwd, "/etc/passwd"), Bind(group, "/etc/group")]
    if dns is not None:
        laid.append(Bind(resolv_conf(run / "resolv.conf", dns), "/etc/resolv.conf"))
    return laid


def installed(namespace: Namespace, src: Path, home: Path, control: dict[str, str]) -> Path:
    """A fresh ``home`` installed from the build under ``src`` by qmail's own ``instpackage``
    and ``instchown`` (in ``namespace``, where its users exist), its ``control`` files (name:
    value) written; the control folder."""
    if home.exists():
        shutil.rmtree(home)
    namespace.run("sh", "-c", f"cd {src} && ./instpackage && ./instchown")
    folder = home / "control"
    for name, value in control.items():
        (folder / name).write_text(value + "\n")
    return folder


def alias_files(
    home: Path, dot_qmail: dict[str, str], maildirs: tuple[str, ...] = ("Maildir",)
) -> Path:
    """The alias user's folder under ``home``: its ``.qmail-<name>`` files (name: text; a dot
    in a name is written ":", as qmail-local reads it), its ``maildirs``, all owned by the
    alias user as qmail-local requires; the folder."""
    alias = home / "alias"
    for name, text in dot_qmail.items():
        (alias / f".qmail-{name.replace('.', ':')}").write_text(text)
    for maildir in maildirs:
        for sub in ("cur", "new", "tmp"):
            (alias / maildir / sub).mkdir(parents=True, exist_ok=True)
    uid, gid = USERS["alias"], GROUPS["nofiles"]
    for path in (alias, *alias.rglob("*")):
        os.chown(path, uid, gid)
        path.chmod(0o700 if path.is_dir() else 0o644)
    alias.chmod(0o2755)
    return alias


def _configure(namespace: Namespace, destination: Destination) -> None:
    """A fresh home (:func:`installed`), its control files and the alias user's files."""
    control = installed(namespace, SRC, HOME, CONTROL)
    host = destination.host
    routes = {REMOTE: destination.port, REFUSED: destination.refused_port,
              SILENT: destination.silent_port, SMTPD: SMTPD_PORT, UNLISTED: SMTPD_PORT,
              "sender.test": destination.capture_port}  # fmt: skip
    (control / "smtproutes").write_text(
        "".join(f"{domain}:{host}:{port}\n" for domain, port in routes.items())
    )
    alias = alias_files(HOME, DOT_QMAIL, ("Maildir", "locked"))
    locked = alias / "locked"
    for path in (locked, *locked.rglob("*")):
        os.chown(path, 0, 0)


def _with_hops(case: Case) -> Case:
    if case.name != HOPS_CASE:
        return case
    hops = tuple(
        f"Received: from relay{n}.sender.test by relay{n + 1}.sender.test; "
        "Sun, 6 Dec 2026 12:00:00 +0000"
        for n in range(HOPS, 0, -1)
    )
    return replace(case, headers=hops + case.headers)


def flushing(namespace: Namespace, done: threading.Event, home: Path = HOME) -> None:
    """Once every message is older than the queue lifetime, ask qmail-send to retry its queue
    now (SIGALRM, after ``qmail-tcpok``: what an administrator's "flush the queue" does), every
    :data:`FLUSH` seconds until ``done``: a temporary failure at a retry after the lifetime is
    returned. qmail's own schedule would retry a remote delivery 400 s after the first try."""
    lifetime = float(CONTROL["queuelifetime"])
    if done.wait(lifetime + 5):
        return
    send = str(home / "bin/qmail-send")
    while True:
        namespace.run(str(home / "bin/qmail-tcpok"), check=False)
        for pid in processes("exe", send):
            os.kill(pid, signal.SIGALRM)
        if done.wait(FLUSH):
            return


def _started(command: list[str], output: IO[bytes]) -> subprocess.Popen[bytes]:
    # qmail-start finds qmail-send and its other programs on the PATH, as qmail's rc does
    env = {"PATH": f"{HOME / 'bin'}:{ENV['PATH']}"}
    return subprocess.Popen(command, env=env, start_new_session=True, cwd=HOME,
                            stdin=subprocess.DEVNULL, stdout=output, stderr=output)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built()
    version = extract(["ucspi-tcp"], UCSPI)["ucspi-tcp"]
    cases = [_with_hops(case) for case in load(MTA, QMAIL_CASES)]
    script_replies(destination, cases)
    laid = mounts(RUN, HOME, DNS_ADDRESS)
    log = RUN / "qmail.log"
    with serving(TABLE, DNS_ADDRESS), Namespace(MTA, laid, grace=5.0) as namespace:
        _configure(namespace, destination)
        smtpd = [
            str(UCSPI / "usr/bin/tcpserver"), "-q", "-u", str(USERS["qmaild"]),
            "-g", str(GROUPS["nofiles"]), "-R", "-H", "-l", SMTPD, "127.0.0.1", str(SMTPD_PORT),
            str(HOME / "bin/qmail-smtpd"),
        ]  # fmt: skip
        # qmail-start stays as qmail-send; its log goes to its logger, cat, and so to ``log``.
        start = [str(HOME / "bin/qmail-start"), "./Maildir/", "cat"]
        with log.open("wb") as output:
            daemons = [_started(namespace.inside(*command), output) for command in (smtpd, start)]
        try:
            wait_listening(SMTPD_PORT, "qmail-smtpd")
            time.sleep(1)  # qmail-send reads its queue and control files
            sendmail = namespace.inside(str(HOME / "bin/sendmail"))
            for number, case in enumerate(cases, start=1):
                submit_locally(sendmail, case, number, lf=True, env=ENV)
            with alongside(lambda done: flushing(namespace, done)):
                return collect(destination, cases, out, MTA, f"{VERSION}+ucspi-tcp-{version}",
                           TIMEOUT)  # fmt: skip
        finally:
            for daemon in daemons:
                stop(daemon)
