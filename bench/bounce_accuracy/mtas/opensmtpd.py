"""OpenSMTPD's notices: Debian's opensmtpd, unpacked under ``/tmp/mta-opensmtpd`` (never
installed), run in the foreground (``smtpd -d -f CONF``) with a configuration of its own.

OpenSMTPD's queue (``/var/spool/smtpd``), its privilege-separation users (``opensmtpd``,
``opensmtpq``) and its control socket are compiled in. So the daemon runs in a mount and UTS
namespace of its own, where ``/var`` is ``/tmp/mta-opensmtpd/run/var`` and ``/etc/passwd`` and
``/etc/group`` are copies of the system's with those two users added: the system's files are
never changed, and nothing of OpenSMTPD's is left outside ``/tmp``. The namespace's host name
is ``mx.laurel.test``.

It listens on 127.0.0.1:``PORT`` and is the final destination of ``laurel.test`` (aliases only);
its rules send ``poplar.test`` to the scripted remote server, ``juniper.test`` to a port where
nothing listens, ``cypress.test`` to a server that never greets (no case uses these two now:
OpenSMTPD returned no notice for them, see its section of ``mta_cases.yaml``) and
``sender.test`` (the notices) to the capture server; anything else goes by DNS (``sorrel.test``
has no record: the resolver answers NXDOMAIN). Delay warnings after a minute, a queue lifetime
of three. OpenSMTPD waits minutes between retries, so ``smtpctl schedule all`` (what an
administrator runs to retry the queue now) is run every few seconds, or nothing would be
retried, and no delay warning sent, before the lifetime ends.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from .cases import collect, load, script_replies, submit
from .destination import Destination
from .dnsserver import Table, resolv_conf, serving
from .host import (
    Bind,
    Mount,
    Overlay,
    alongside,
    identities,
    isolated,
    listening,
    wait_listening,
    without_resolving,
)
from .packages import extract
from .rows import Row

MTA = "opensmtpd"
PACKAGES = ["opensmtpd"]
ROOT = Path("/tmp/mta-opensmtpd")
RUN = ROOT / "run"
PORT = 7526  # 2526 + the helper's test port offset (5000)
LOCAL = "laurel.test"
REMOTE = "poplar.test"
REFUSED = "juniper.test"
SILENT = "cypress.test"
NXDOMAIN = "sorrel.test"
ALIASES = {"vera.lind": f"vera.l@{REMOTE}", "postmaster": "root"}
USERS = {"opensmtpd": 64990, "opensmtpq": 64991}  # Debian's names, ids of the namespace only
WARN_AFTER = "1m"
LIFETIME = "3m"
SCHEDULE_EVERY = 15.0  # seconds between two "smtpctl schedule all"
TIMEOUT = 300.0  # seconds to wait for the last notice (the lifetime, 3 minutes, and retries)

SMTPD = ROOT / "usr/sbin/smtpd"
SMTPCTL = ROOT / "usr/sbin/smtpctl"

CONF = """\
queue ttl {lifetime}
bounce warn-interval {warn}
table aliases file:{run}/aliases
listen on 127.0.0.1 port {port} hostname mx.{local}
action "local" mbox alias <aliases>
action "remote" relay host smtp://{host}:{remote}
action "refused" relay host smtp://{host}:{refused}
action "silent" relay host smtp://{host}:{silent}
action "capture" relay host smtp://{host}:{capture}
action "dns" relay
match from any for domain "{local}" action "local"
match from local for domain "{remote_domain}" action "remote"
match from local for domain "{refused_domain}" action "refused"
match from local for domain "{silent_domain}" action "silent"
match from local for domain "sender.test" action "capture"
match from local for any action "dns"
"""


def write_run(
    run: Path, aliases: dict[str, str], conf: str, mailuser: tuple[str, int] | None = None
) -> None:
    """A fresh ``run`` folder for a daemon started with :func:`mounts`: its private ``/var``'s
    folders, copies of the system's ``/etc/passwd`` and ``/etc/group`` with OpenSMTPD's users
    added, ``aliases`` and ``smtpd.conf`` (the text ``conf``). With ``mailuser`` (name, uid:
    the user of a receiving side's local deliveries), that user and group too, its home
    ``/var/<name>`` made and owned by it."""
    if run.exists():
        shutil.rmtree(run)
    for folder in ("var/spool", "var/run", "var/lib/opensmtpd/empty"):
        (run / folder).mkdir(parents=True)
    users = [f"{name}:x:{uid}:{uid}:OpenSMTPD:/nonexistent:/usr/sbin/nologin"
             for name, uid in USERS.items()]  # fmt: skip
    groups = [f"{name}:x:{uid}:" for name, uid in USERS.items()]
    if mailuser is not None:
        user, uid = mailuser
        home = run / "var" / user
        home.mkdir()
        shutil.chown(home, uid, uid)
        users.append(f"{user}:x:{uid}:{uid}:mail:/var/{user}:/usr/sbin/nologin")
        groups.append(f"{user}:x:{uid}:")
    identities(run, users, groups)
    (run / "aliases").write_text("".join(f"{name}: {to}\n" for name, to in aliases.items()))
    (run / "smtpd.conf").write_text(conf)


def mounts(run: Path) -> list[Mount]:
    """What the daemon's namespace sees of ``run`` (:func:`write_run`'s): ``/var``,
    ``/etc/passwd`` and ``/etc/group``."""
    return [Bind(run / "var", "/var"), Bind(run / "passwd", "/etc/passwd"),
            Bind(run / "group", "/etc/group")]  # fmt: skip


def _configure(destination: Destination) -> None:
    conf = CONF.format(
        lifetime=LIFETIME, warn=WARN_AFTER, run=RUN, port=PORT, local=LOCAL,
        host=destination.host, remote=destination.port, refused=destination.refused_port,
        silent=destination.silent_port, capture=destination.capture_port,
        remote_domain=REMOTE, refused_domain=REFUSED, silent_domain=SILENT,
    )  # fmt: skip
    write_run(RUN, ALIASES, conf)


def schedule_all(
    daemon: subprocess.Popen[bytes], stop: threading.Event, smtpctl: Path = SMTPCTL
) -> None:
    """Retry every queued envelope now and then, from inside the daemon's namespace (its
    control socket is in the private /var; smtpctl runs with the group of its queue user)."""
    command = [
        "nsenter", "-t", str(daemon.pid), "-m", "setpriv", f"--regid={USERS['opensmtpq']}",
        "--clear-groups", str(smtpctl), "schedule", "all",
    ]  # fmt: skip
    while not stop.wait(SCHEDULE_EVERY):
        subprocess.run(command, capture_output=True, check=False)


@contextmanager
def receiving(
    root: Path,
    run: Path,
    hostname: str,
    *,
    ports: Sequence[int],
    table: Table,
    dns_address: str,
    log_copy: Path,
) -> Iterator[None]:
    """OpenSMTPD unpacked under ``root`` as a round's receiving server, while open: the
    harness's DNS server on ``dns_address`` serving ``table``, and ``smtpd -d`` with ``run``'s
    ``smtpd.conf`` (:func:`write_run`'s) in a namespace of its own named ``hostname``
    (:func:`mounts`), whose ``/etc/resolv.conf`` names that server and whose
    ``/usr/libexec`` has the package's laid over the system's; open once each of ``ports``
    listens (the first is waited for as the daemon starts), its queue retried alongside
    (:func:`schedule_all`). Its log is copied to ``log_copy`` on leaving."""
    resolv = resolv_conf(run / "resolv.conf", dns_address)
    # its delivery wrapper (mail.mda) and Debian's filters are found at a compiled-in
    # /usr/libexec/opensmtpd
    libexec = Overlay("/usr/libexec", lower=root / "usr/libexec")
    smtpd = [str(root / "usr/sbin/smtpd"), "-d", "-f", str(run / "smtpd.conf")]
    command = isolated(smtpd, [*mounts(run), Bind(resolv, "/etc/resolv.conf"), libexec], hostname)
    log = run / "smtpd.log"
    try:
        with serving(table, dns_address), listening(command, ports[0], "smtpd", log) as daemon:
            for port in ports:
                wait_listening(port, "smtpd (receiving)")
            with alongside(partial(schedule_all, daemon, smtpctl=root / "usr/sbin/smtpctl")):
                yield
    finally:
        if log.exists():
            shutil.copy(log, log_copy)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["opensmtpd"]
    built = without_resolving(load(MTA), NXDOMAIN)
    script_replies(destination, built)
    _configure(destination)
    smtpd = [str(SMTPD), "-d", "-f", str(RUN / "smtpd.conf")]
    command = isolated(smtpd, mounts(RUN), f"mx.{LOCAL}")
    # smtpd's privilege-separated processes stay in its process group.
    with (
        listening(command, PORT, "smtpd", RUN / "smtpd.log") as daemon,
        alongside(partial(schedule_all, daemon)),
    ):
        submit(destination.host, PORT, built)
        return collect(destination, built, out, MTA, version, TIMEOUT)
