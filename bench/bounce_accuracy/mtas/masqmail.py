"""masqmail's notices (round 47): masqmail, an old small MTA once in Debian, built here from a
local snapshot of its public repository (https://github.com/ossilator/masqmail at
:data:`COMMIT`, 1.0.0) under ``/tmp/mta-masqmail``. GPL: it is only built and run to make the
notices; nothing of its source enters this repository.

The build: ``git archive`` of the snapshot (``POSTLINE_MASQMAIL_GIT``, else
:data:`SNAPSHOT`) into ``/tmp/mta-masqmail/src``, a ``config.h`` of our own in place of
autoconf's (paths under ``/tmp/mta-masqmail``; the settings file overrides them all) and one
``gcc`` line against the system's GLib, with the headers of Debian's ``libglib2.0-dev``
unpacked there (``apt-get download``, ``dpkg -x``; never installed).

masqmail runs as root, with a settings file of its own (``-C``), in a mount namespace where a
private ``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``, on
:data:`DNS_ADDRESS`:53: an address of this module's own); the system's files are never
changed. Each case is handed over on the command line (``masqmail -odb -f SENDER RCPT...``,
as its ``sendmail``), which delivers at once in the background; a queue daemon (``-q``)
retries every few seconds. The silent server's case has a queue of its own that no queue run
visits (see :func:`_configure`). Routes (masqmail's "permanent routes"): ``medlar.test`` to the
scripted remote server, ``sloe.test`` to a port where nothing listens, ``damson.test`` to a
server that never greets, the DNS cases' domains by MX and address lookup through our DNS
server, ``sender.test`` (the notices) to the capture server. Its own name is
``mx.quince.test``; ``quince.test`` is its local domain (mbox delivery for the system's
users). Delay warnings after 20 s, failure after 60 s of deferral. masqmail's greeting timeout
is five minutes (compiled in), so the silent server's case takes that long.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .cases import collect, load, script_replies, submit_locally
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace
from .packages import extract, unpack_commit
from .rows import Row

MTA = "masqmail"
ROOT = Path("/tmp/mta-masqmail")
RUN = ROOT / "run"
SNAPSHOT = Path("/work/.mirror/ossilator+masqmail/repo")
COMMIT = "7eb190f0cb5b811391d5f55f8c2dc868e8cedd3c"  # "refresh TODO", 2024-11-17, after v1.0.0
VERSION = "1.0.0"
MASQMAIL = ROOT / "masqmail"
DNS_ADDRESS = "127.0.0.57"  # the DNS server's own loopback address (others use .41 to .48)
LOCAL = "quince.test"
REMOTE = "medlar.test"
REFUSED = "sloe.test"
SILENT = "damson.test"
WARN_AFTER = "20s"
MAX_DEFER = "60s"
QUEUE_EVERY = "5s"
TIMEOUT = 420.0  # seconds for the last notice (the five-minute greeting timeout, then some)

# The DNS cases' domains and what the DNS server answers (names carry no word of the failure);
# a name not in the table is NXDOMAIN (greengage.test).
TABLE = Table(
    {
        "mirabelle.test": Name(),  # the name exists, no MX, no A, no AAAA (NODATA)
        "cornel.test": Name(rcode=2),  # SERVFAIL on every query
    }
)
DNS_DOMAINS = ("greengage.test", "mirabelle.test", "cornel.test")

SOURCES = (
    "accept.c address.c alias.c connect.c conf.c deliver.c dotlock.c expand.c fail_msg.c "
    "header.c interface.c local.c log.c listen.c lookup.c masqmail.c message.c online.c parse.c "
    "permissions.c readsock.c rewrite.c route.c queue.c smtp_in.c smtp_out.c spool.c tables.c "
    "timeival.c whereami.c"
).split()
GLIB = Path("/usr/lib/x86_64-linux-gnu/libglib-2.0.so.0")  # the system's GLib (runtime)

CONFIG_H = """\
#define PACKAGE "masqmail"
#define PACKAGE_NAME "MasqMail"
#define PACKAGE_STRING "MasqMail {version}"
#define VERSION "{version}"
#define ENABLE_RESOLVER 1
#define ENABLE_DEBUG 1
#define ENABLE_AUTH 1
#define HAVE_GETLINE 1
#define HAVE_FDATASYNC 1
#define DEF_MAIL_USER "mail"
#define DEF_MAIL_GROUP "mail"
#define LOG_DIR "{root}/run/log"
#define SPOOL_DIR "{root}/run/spool"
#define CONF_DIR "{root}/run"
#define PID_DIR "{root}/run/pid"
#define LOCK_DIR "{root}/run/lock"
#define DATA_DIR "{root}/src"
"""

CONF = """\
host_name = "mx.{local}"
local_hosts = "localhost;{local};mx.{local}"
spool_dir = "{queue}/spool"
log_dir = "{queue}/log"
lock_dir = "{queue}/lock"
pid_dir = "{queue}/pid"
mail_dir = "{run}/mail"
alias_file = "{run}/aliases"
errmsg_file = "{src}/tpl/failmsg.tpl"
warnmsg_file = "{src}/tpl/warnmsg.tpl"
permanent_routes = "{routes}"
warn_intervals = "{warn}"
max_defer_time = "{max_defer}"
use_syslog = false
"""

ROUTE_TO_HOST = 'allowed_recipients = "{pattern}"\nmail_host = "{host}:{port}"\n'
ROUTE_BY_DNS = 'allowed_recipients = "{patterns}"\nresolve_list = "dns_mx;byname"\n'


def build() -> str:
    """masqmail built from the snapshot at :data:`COMMIT` (once: a build of that commit is
    kept); its version."""
    stamp = ROOT / "built"
    if MASQMAIL.exists() and stamp.exists() and stamp.read_text() == COMMIT:
        return f"{VERSION} ({COMMIT[:7]})"
    dev = extract(["libglib2.0-dev"], ROOT / "dev")["libglib2.0-dev"]
    src = ROOT / "src"
    unpack_commit(Path(os.environ.get("POSTLINE_MASQMAIL_GIT", SNAPSHOT)), COMMIT, src)
    (src / "config.h").write_text(CONFIG_H.format(version=VERSION, root=ROOT))
    headers = ROOT / "dev/usr"
    subprocess.run(
        ["gcc", "-O1", "-std=c99", "-w", "-D_GNU_SOURCE", "-DG_DISABLE_DEPRECATED",
         f"-I{src}", f"-I{src / 'src'}", f"-I{headers / 'include/glib-2.0'}",
         f"-I{headers / 'lib/x86_64-linux-gnu/glib-2.0/include'}",
         *SOURCES, str(GLIB), "-lresolv", "-o", str(MASQMAIL)],
        cwd=src / "src", check=True, capture_output=True,
    )  # fmt: skip
    stamp.write_text(COMMIT)
    (ROOT / "glib-headers").write_text(f"libglib2.0-dev {dev}\n")
    return f"{VERSION} ({COMMIT[:7]})"


def _configure(destination: Destination) -> dict[str, Path]:
    """The settings files: ``main`` (the queue the daemon retries) and ``silent`` (a queue of
    its own for the silent server's case, which no queue run retries: a run that reached it
    would hang five minutes on it, and every message after it, the DNS cases', would miss its
    delay warning); their queues, logs and locks under ``RUN/<name>``."""
    if RUN.exists():
        shutil.rmtree(RUN)
    for queue in ("main", "silent"):
        for folder in ("spool", "log", "lock", "pid"):
            (RUN / queue / folder).mkdir(parents=True)
            shutil.chown(RUN / queue / folder, "mail", "mail")  # masqmail drops to its mail user
    (RUN / "mail").mkdir(mode=0o1777)
    (RUN / "mail").chmod(0o1777)
    (RUN / "aliases").write_text("postmaster: root\n")
    host = destination.host
    routes = {
        "remote": ROUTE_TO_HOST.format(pattern=f"*@{REMOTE}", host=host, port=destination.port),
        "refused": ROUTE_TO_HOST.format(
            pattern=f"*@{REFUSED}", host=host, port=destination.refused_port
        ),
        "silent": ROUTE_TO_HOST.format(
            pattern=f"*@{SILENT}", host=host, port=destination.silent_port
        ),
        "dns": ROUTE_BY_DNS.format(patterns=";".join(f"*@{d}" for d in DNS_DOMAINS)),
        "capture": ROUTE_TO_HOST.format(
            pattern="*@sender.test", host=host, port=destination.capture_port
        ),
    }
    for name, text in routes.items():
        (RUN / f"{name}.route").write_text(text)
    confs = {}
    for queue in ("main", "silent"):
        confs[queue] = RUN / f"{queue}.conf"
        confs[queue].write_text(
            CONF.format(
                local=LOCAL, run=RUN, queue=RUN / queue, src=ROOT / "src", warn=WARN_AFTER,
                max_defer=MAX_DEFER, routes=";".join(str(RUN / f"{n}.route") for n in routes),
            )
        )  # fmt: skip
    return confs


def generate(out: Path, destination: Destination) -> list[Row]:
    version = build()
    built = load(MTA)
    script_replies(destination, built)
    confs = _configure(destination)
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    with (
        serving(TABLE, DNS_ADDRESS),
        Namespace(MTA, [Bind(resolv, "/etc/resolv.conf")], grace=2.0) as namespace,
    ):
        # the queue daemon forks away from its caller and stays in the namespace; what is
        # still running there on leaving is stopped with it
        namespace.run(str(MASQMAIL), "-C", str(confs["main"]), f"-q{QUEUE_EVERY}")
        for number, case in enumerate(built, start=1):
            silent = all(a.endswith(f"@{SILENT}") for a in case.recipients)
            conf = confs["silent" if silent else "main"]
            command = namespace.inside(str(MASQMAIL), "-C", str(conf), "-odb", "-oi")
            submit_locally(command, case, number)
            time.sleep(0.2)
        try:
            return collect(destination, built, out, MTA, version, TIMEOUT)
        finally:
            _stop_daemon()


def _stop_daemon() -> None:
    """Stop the queue daemon by its pid file (it quits on SIGTERM); what is left in the
    namespace, a queue run under way, is stopped with the namespace."""
    pidfile = RUN / "main/pid/masqmail.pid"
    try:
        os.kill(int(pidfile.read_text().split()[0]), signal.SIGTERM)
    except (OSError, ValueError, IndexError):
        pass
