"""ZMailer's notices (round 46): ZMailer 3.0.1, an MTA of large sites in the 1990s and 2000s,
built here from a snapshot of its public repository (``rzachariassen/zmailer`` at
:data:`COMMIT`, read with ``git archive``; licensed Artistic, BSD, GPL-2 or LGPL-2 at the
packager's choice, README.LICENSES) under ``/tmp/mta-zmailer``. Nothing of it enters the
repository: it is only built and run here to make notices.

The build: Debian's ``autoconf`` and ``m4`` unpacked under ``/tmp/mta-zmailer/tools`` (never
installed; their compiled-in paths rewritten to that folder) make ``configure`` from
``configure.in``; ``--prefix`` and every path of ZMailer's (spool, settings, logs) are under
``/tmp/mta-zmailer/inst``; compiled ``-O0 -std=gnu89`` with today's compiler's newer errors
turned back into warnings (at ``-O`` its inline list functions want a library the SMTP server
does not link); sfio's stdio-binary-compatible library (unused by ZMailer, and whose probe of
glibc's ``FILE`` no longer builds) is made empty; ``vacation``, which wants a DB library, is
left out (``make -k``); ``post-install`` lays the prototype settings into place.

Its databases are ``unordered`` files (no DB library): ``routes`` send ``spindle.test`` to the
scripted remote server, ``guelder.test`` to a port where nothing listens, ``sloe.test`` to a
server that never greets, ``sender.test`` (the notices) to the capture server, each through a
channel of its own whose ``smtp`` transport agent has the port (``-p``); anything else goes by
DNS, to the harness's DNS server (``dnsserver.py`` on :data:`DNS_ADDRESS`, named by a private
``/etc/resolv.conf``), which gives the routed domains an address and ``quillwort.test`` none
(NXDOMAIN). Its own domain is ``buckthorn.test`` (the system's users; anything else is an
unknown user). The router and the scheduler run in a mount and UTS namespace of their own
(``/var/mail`` and ``/etc/resolv.conf`` laid over the system's; host name
``mx.buckthorn.test``); mail is handed to its ``sendmail`` on the command line. Retries every
10 s, a queue lifetime (``expiry``) of three minutes; the silent server is given up after 15 s
a try (``-T``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

from .cases import collect, load, script_replies, submit_locally
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace
from .packages import extract, unpack_commit
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "zmailer"
# The public repository's snapshot (https://github.com/rzachariassen/zmailer), read with
# ``git archive``; the mirror is where the harness finds it here.
SNAPSHOT = Path("/work/.mirror/rzachariassen+zmailer/repo")
COMMIT = "70d34a57efd487ec09dfdc3f821f007b59484920"
VERSION = "3.0.1 (git 70d34a5)"
TOOLS = ["autoconf", "m4"]  # only to make ``configure``; unpacked, never installed
ROOT = Path("/tmp/mta-zmailer")
SRC = ROOT / "src"
INST = ROOT / "inst"
RUN = ROOT / "run"
DNS_ADDRESS = "127.0.0.51"  # this round's DNS server (round 41's is .41, round 45's .45)
LOCAL = "buckthorn.test"
REMOTE = "spindle.test"
REFUSED = "guelder.test"
SILENT = "sloe.test"
NXDOMAIN = "quillwort.test"
ALIASES = {"postmaster": "root"}
TIMEOUT = 420.0  # seconds for every case's notice (the retried ones expire after 3 minutes)
GDBM = Path("/usr/lib/x86_64-linux-gnu/libgdbm.so.6")  # the system's GDBM library (runtime)
CFLAGS = (
    "-O0 -g -fcommon -std=gnu89 -Wno-implicit-function-declaration -Wno-implicit-int "
    "-Wno-incompatible-pointer-types -Wno-int-conversion"
)

# The routed domains have an address (a real site's would; without one the smtp agent
# notes a failed lookup in its transcript); the unknown domain has none.
TABLE = Table(
    {
        domain: Name((("A", "127.0.0.1"),))
        for domain in (REMOTE, REFUSED, SILENT, "sender.test", LOCAL, f"mx.{LOCAL}")
    }
)

SCHEDULER = """\
PARAMauthfile = "${{MAILSHARE}}/scheduler.auth"
*/*	interval=10s
	idlemax=1m
	expiry=3m
	expiry2=1m
	retries="1 1 2"
	skew=1
	maxchannel=0
	maxring=20
	maxta=0
	user=root
	group=daemon
local/*
	command="mailbox"
zremote/*
	command="smtp -c $channel -p {remote} -s -l ${{LOGDIR}}/smtp"
zcapture/*
	command="smtp -c $channel -p {capture} -s -l ${{LOGDIR}}/smtp"
zrefused/*
	command="smtp -c $channel -p {refused} -s -l ${{LOGDIR}}/smtp"
zsilent/*
	command="smtp -c $channel -p {silent} -T 15s -s -l ${{LOGDIR}}/smtp"
smtp/*
	command="smtp -s -l ${{LOGDIR}}/smtp"
error/*
	command=errormail
"""


def _tools(root: Path) -> dict[str, str]:
    """Debian's autoconf and m4 under ``<root>/tools`` (unpacked afresh each time), their
    compiled-in paths pointed there."""
    tools = root / "tools"
    versions = extract(TOOLS, tools)
    share = tools / "usr/share/autoconf"
    scripts = [p for p in (tools / "usr/bin").iterdir() if p.read_bytes()[:2] == b"#!"]
    for path in [share / "autom4te.cfg", *scripts]:  # never m4 itself, a binary
        text = path.read_bytes().decode("utf-8", errors="surrogateescape")
        fixed = (
            text.replace("/usr/share/autoconf", str(share))
            .replace("'/usr/bin/m4'", f"'{tools}/usr/bin/m4'")
            .replace("/usr/bin/autom4te", str(tools / "usr/bin/autom4te"))
        )
        path.write_bytes(fixed.encode("utf-8", errors="surrogateescape"))
    return versions


def _gdbm(root: Path) -> dict[str, str]:
    """Debian's ``libgdbm-dev`` headers under ``<root>/dev`` (unpacked, never installed) and a
    link to the system's GDBM library beside them: the flags ``configure`` finds GDBM by."""
    extract(["libgdbm-dev"], root / "dev")
    lib = root / "dev/lib"
    lib.mkdir(parents=True, exist_ok=True)
    link = lib / "libgdbm.so"
    link.unlink(missing_ok=True)
    link.symlink_to(GDBM)
    # LIBRARY_PATH, not LDFLAGS: ZMailer's makefiles link without $(LDFLAGS)
    return {"CPPFLAGS": f"-I{root / 'dev/usr/include'}", "LIBRARY_PATH": str(lib)}


def build(root: Path = ROOT, *, gdbm: bool = False) -> Path:
    """ZMailer from the snapshot at :data:`COMMIT`, built under ``<root>/src`` and installed
    under ``<root>/inst`` (:data:`INST` by default; once); that installation's folder. With
    ``gdbm``, built against GDBM (``_gdbm``): its SMTP server's policy database wants a DB
    library (round 76); round 46's sending side has none."""
    src, inst = root / SRC.relative_to(ROOT), root / INST.relative_to(ROOT)
    if (inst / "bin/scheduler").exists() and (inst / "bin/ta/smtp").exists():
        return inst
    _tools(root)
    unpack_commit(SNAPSHOT, COMMIT, src)
    env = {
        **os.environ,
        "PATH": f"{root / 'tools/usr/bin'}:{os.environ['PATH']}",
        "M4": str(root / "tools/usr/bin/m4"),
        "CC": "cc",
        "CFLAGS": CFLAGS,
        **(_gdbm(root) if gdbm else {}),
    }
    log = (root / "build.log").open("wb")

    def step(*command: str, check: bool = True) -> None:
        subprocess.run(command, cwd=src, env=env, stdout=log, stderr=log, check=check)

    with log:
        (src / "configure").write_bytes(
            subprocess.run(
                ["autoconf", "configure.in"], cwd=src, env=env, check=True, capture_output=True
            ).stdout
        )
        (src / "configure").chmod(0o755)
        paths = {
            "postoffice": "spool", "mailshare": "share", "mailvar": "var", "mailbin": "bin",
            "logdir": "log", "zconfig": "zmailer.conf", "sendmailpath": "sbin/sendmail",
            "rmailpath": "sbin/rmail",
        }  # fmt: skip
        step(
            "./configure", f"--prefix={inst}", f"--includedir={inst}/include",
            "--with-system-malloc", *(f"--with-{k}={inst}/{v}" for k, v in paths.items()),
        )  # fmt: skip
        makefile = src / "sfio/src/lib/sfio/makefile"
        text = makefile.read_text()
        making = text.index("Stdio_b/libstdio.a: ast_common.h FEATURE/sfio\n")
        rule_end = text.index("\n\n", making)
        text = (
            text[:making]
            + "Stdio_b/libstdio.a: ast_common.h FEATURE/sfio\n\t$(AR) cr Stdio_b/libstdio.a"
            + text[rule_end:]
        )
        makefile.write_text(text)
        step("make", "-k", check=False)  # utils/vacation needs a DB library: left out
        step("make", "-k", "install", check=False)
        step("perl", str(inst / "bin/post-install"))
    if not (inst / "bin/ta/smtp").exists():
        raise RuntimeError(f"ZMailer did not build: see {root / 'build.log'}")
    return inst


def empty_spool(inst: Path) -> None:
    """The spool and the logs of the installation at ``inst`` emptied for a run."""
    spool = inst / "spool"
    for folder in ("queue", "transport", "router", "deferred", "freezer", "public", "postman"):
        for path in (spool / folder).rglob("*"):
            if path.is_file():
                path.unlink()
    for path in spool.glob(".pid.*"):
        path.unlink()
    log = inst / "log"
    if log.exists():
        shutil.rmtree(log)
    log.mkdir()


def _configure(destination: Destination) -> None:
    """Settings, databases and an empty spool for one run."""
    conf = INST / "zmailer.conf"
    conf.write_text(
        "".join(
            "DBTYPE=unordered\n" if line.startswith("DBTYPE=") else line + "\n"
            for line in conf.read_text().splitlines()
        )
    )
    var = INST / "var"
    (var / "mail.conf").write_text(f"orgdomain={LOCAL}\nhostname=mx.{LOCAL}\nmydomain={LOCAL}\n")
    db = var / "db"
    (db / "localnames.dat").write_text(f"{LOCAL}\t{LOCAL}\nmx.{LOCAL}\t{LOCAL}\n")
    routes = {REMOTE: "zremote", "sender.test": "zcapture", REFUSED: "zrefused",
              SILENT: "zsilent"}  # fmt: skip
    (db / "routes.dat").write_text(
        "".join(f"{domain}\t{channel}![{destination.host}]\n" for domain, channel in routes.items())
    )
    aliases = "".join(f"{name}: {to}\n" for name, to in ALIASES.items())
    for name in ("aliases", "aliases.dat"):
        (db / name).write_text(aliases)
    for name in ("fqdnaliases.dat", "userdb.dat"):
        (db / name).write_text("")
    (INST / "share/scheduler.conf").write_text(
        SCHEDULER.format(
            remote=destination.port, capture=destination.capture_port,
            refused=destination.refused_port, silent=destination.silent_port,
        )
    )  # fmt: skip
    empty_spool(INST)
    if RUN.exists():
        shutil.rmtree(RUN)
    (RUN / "mail").mkdir(parents=True)
    (RUN / "mail").chmod(0o1777)


def generate(out: Path, destination: Destination) -> list[Row]:
    build()
    built = load(MTA)
    script_replies(destination, built)
    _configure(destination)
    resolv = resolv_conf(ROOT / "resolv.conf", DNS_ADDRESS)
    mounts = [Bind(RUN / "mail", "/var/mail"), Bind(resolv, "/etc/resolv.conf")]
    zmailer = str(INST / "bin/zmailer")
    space = Namespace("ZMailer", mounts, f"mx.{LOCAL}", grace=5.0)  # agents left after 5 s: killed
    with serving(TABLE, DNS_ADDRESS), space:
        space.run(zmailer, "router")
        space.run(zmailer, "scheduler")
        try:
            sendmail = space.inside(str(INST / "bin/sendmail"))
            for number, case in enumerate(built, start=1):
                submit_locally(sendmail, case, number, lf=True)
            rows = collect(destination, built, out, MTA, VERSION, TIMEOUT)
        finally:
            space.run(zmailer, "kill", check=False)
    return rows
