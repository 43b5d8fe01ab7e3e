"""SMTP content-filter proxies run for real in front of a receiving Postfix (round 67): the
sending MTA talks to the proxy, which passes the mail it accepts on to the receiving Postfix's
smtpd (a pre-queue filter), and the notices the sending MTA writes of what the proxy refused or
deferred: this module's Postfix (a second instance of the system's, from :data:`CLIENTS`),
``proxies_exim`` and ``proxies_sendmail`` the others.

The proxies run from Debian 12's packages (``packages.extract`` into ``/tmp/r67-proxies/pkg``,
never installed), each instance with a configuration file of its own and one recipient domain
routed to it (:data:`PROXIES`):

- ``clamsmtpd`` 1.10 with a private ``clamd`` (Debian's clamav-daemon, unpacked) reading one
  signature database of the harness's own (round 55's: the EICAR test string as a body
  signature; no freshclam, no network): ``Action: bounce`` (the stock ``drop`` answers 250 and
  discards the message, no notice), the same with its clamd down (nothing listens on its
  ``ClamAddress``), and one with ``MaxConnections: 2`` whose two connections the harness holds
  open (:func:`_hold`), so the sending MTA's connection is over it;
- ``proxsmtpd`` 1.10 with a ``FilterCommand`` of ours (:data:`FILTERS`, shell scripts under the
  run folder): one exits 1 with a full reply on stderr (proxsmtpd(8): "If you specify a full
  SMTP error code then it will be used"), one with words only (a 550 is used), one with
  nothing on stderr, one with a temporary reply, one that runs past ``FilterTimeout``; and one
  with ``FilterType: reject`` (its ``FilterReject``, stock "530 Email Rejected", to every
  MAIL). proxsmtpd has no size limit of its own.

Mail that passes goes to the receiving instance (:data:`RECEIVING_PORT`), which discards it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import PROXIES_CASES, load
from .destination import Destination
from .host import ENV, listening, write_file
from .milters_postfix import SIGNATURES
from .packages import extract
from .receiver import Receiver
from .rows import Row

MTA = "proxies_postfix"
ROOT = Path("/tmp/r67-proxies")
PACKAGES_ROOT = ROOT / "pkg"
RUN = ROOT / "run"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 19000  # 2700 + the helper's test port offset (16300): the sending Postfix
RECEIVING_PORT = 19005  # the receiving Postfix's smtpd, where the proxies pass mail on
CLAMD_PORT = 19006
CLAMD_DOWN_PORT = 19007  # nothing listens here: the clamd of the clamd-down instance
SENDING = "damson-r67.test"
RECEIVING = "elder-r67.test"
# each sending MTA's own address, as the proxies see it
CLIENTS = {
    "proxies_postfix": "127.67.0.2",
    "proxies_exim": "127.67.0.3",
    "proxies_sendmail": "127.67.0.4",
}
PACKAGES = ["clamsmtp", "proxsmtp", "clamav-daemon", "libclamav12", "libmspack0"]
HELD = 2  # the connections the harness holds open to the busy instance (its MaxConnections)
KEEP_ALIVE = 30.0  # seconds between the held connections' NOOPs

CLAMD_CONF = """\
Foreground yes
LogFile {run}/clamd.log
DatabaseDirectory {run}/clamav-db
TCPSocket {port}
TCPAddr 127.0.0.1
TemporaryDirectory {run}/tmp
"""

CLAMSMTPD_CONF = """\
Listen: 127.0.0.1:{port}
OutAddress: 127.0.0.1:{out}
ClamAddress: 127.0.0.1:{clamd}
TempDirectory: {run}/tmp
Action: bounce
"""

PROXSMTPD_CONF = """\
Listen: 127.0.0.1:{port}
OutAddress: 127.0.0.1:{out}
TempDirectory: {run}/tmp
FilterTimeout: 5
"""

# the FilterCommands of ours: each reads the message and answers as proxsmtpd(8) says a filter
# may (its exit code, the last line on stderr)
FILTERS = {
    "code": (
        "#!/bin/sh\ncat >/dev/null\n"
        "echo '550 5.7.1 Message refused by the content filter of this site' >&2\nexit 1\n"
    ),
    "words": (
        "#!/bin/sh\ncat >/dev/null\n"
        "echo 'The message carries an attachment type this site does not accept' >&2\nexit 1\n"
    ),
    "silent": "#!/bin/sh\ncat >/dev/null\nexit 2\n",
    "temporary": (
        "#!/bin/sh\ncat >/dev/null\n"
        "echo '451 4.3.0 Content filter busy, try again later' >&2\nexit 1\n"
    ),
    "slow": "#!/bin/sh\ncat >/dev/null\nsleep 60\n",
}

# recipient domain: (proxy, its port, its settings beyond the common ones)
PROXIES = {
    "fig-r67.test": ("clamsmtpd", 19010, ""),
    "guava-r67.test": ("clamsmtpd", 19011, "down"),
    "hazel-r67.test": ("clamsmtpd", 19012, "MaxConnections: 2\nTimeOut: 3600\n"),
    "jujube-r67.test": ("proxsmtpd", 19013, "code"),
    "kumquat-r67.test": ("proxsmtpd", 19014, "words"),
    "lime-r67.test": ("proxsmtpd", 19015, "silent"),
    "mango-r67.test": ("proxsmtpd", 19016, "temporary"),
    "nectarine-r67.test": ("proxsmtpd", 19017, "slow"),
    "olive-r67.test": ("proxsmtpd", 19018, "FilterType: reject\n"),
}
BUSY = "hazel-r67.test"

RECV_MAIN = """
relay_domains = {domains}
local_transport = discard:
"""


def _settings(domain: str) -> str:
    """The configuration file of ``domain``'s proxy instance."""
    proxy, port, extra = PROXIES[domain]
    if proxy == "clamsmtpd":
        clamd = CLAMD_DOWN_PORT if extra == "down" else CLAMD_PORT
        text = CLAMSMTPD_CONF.format(port=port, out=RECEIVING_PORT, clamd=clamd, run=RUN)
        return text + ("" if extra == "down" else extra)
    text = PROXSMTPD_CONF.format(port=port, out=RECEIVING_PORT, run=RUN)
    if extra in FILTERS:
        return text + f"FilterCommand: {RUN / ('filter-' + extra)}\n"
    return text + extra


def prepare() -> dict[str, str]:
    """Fresh folders, the packages unpacked, the proxies', clamd's and the receiving
    instance's settings written; each package's version."""
    for leftover in (RUN, RECV):
        shutil.rmtree(leftover, ignore_errors=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    os.chmod(ROOT, 0o755)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    (RUN / "clamav-db").mkdir(parents=True)
    (RUN / "tmp").mkdir()
    (RUN / "tmp").chmod(0o1777)
    write_file(RUN / "clamav-db" / "local.ndb", SIGNATURES)
    write_file(RUN / "clamd.conf", CLAMD_CONF.format(run=RUN, port=CLAMD_PORT))
    for name, script in FILTERS.items():
        write_file(RUN / f"filter-{name}", script, mode=0o755)
    for domain in PROXIES:
        write_file(RUN / f"{domain}.conf", _settings(domain))
    master = f"127.0.0.1:{RECEIVING_PORT} inet n - n - - smtpd\n" + postfix.SERVICES
    routes = dict.fromkeys(PROXIES, "discard:")
    postfix.configure(RECV, RECEIVING, master, routes, {"postmaster": "root"})
    with (RECV / "etc" / "main.cf").open("a") as main:
        main.write(RECV_MAIN.format(domains=", ".join(PROXIES)))
    return versions


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the port of the proxy it goes to."""
    return {domain: port for domain, (_, port, _) in PROXIES.items()}


@contextmanager
def _hold(port: int) -> Iterator[None]:
    """:data:`HELD` connections to the proxy on ``port``, greeted and kept open (a NOOP every
    :data:`KEEP_ALIVE` seconds) while the context is open, so each further connection is over
    its ``MaxConnections``."""
    held = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(HELD)]
    for connection in held:
        connection.recv(1024)
    done = threading.Event()

    def keep() -> None:
        while not done.wait(KEEP_ALIVE):
            for connection in held:
                try:
                    connection.sendall(b"NOOP\r\n")
                    connection.recv(1024)
                except OSError:
                    continue

    thread = threading.Thread(target=keep, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        for connection in held:
            connection.close()


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[str]:
    """clamd, the proxies and the receiving instance while open; their versions. The
    receiving instance's log and the daemons' output are copied beside ``out`` on leaving."""
    versions = prepare()
    pkg = PACKAGES_ROOT
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH": f"{pkg}/usr/lib/x86_64-linux-gnu",
    }
    with ExitStack() as stack:
        stack.callback(_keep_output, out, mta)
        etc = str(RECV / "etc")
        subprocess.run(["postfix", "-c", etc, "start"], check=True, env=ENV)
        stack.callback(shutil.copy, RECV / "maillog", out.parent / f"{mta}-receiving.log")
        stack.callback(subprocess.run, ["postfix", "-c", etc, "stop"], check=False, env=ENV)
        clamd = [f"{pkg}/usr/sbin/clamd", "-c", str(RUN / "clamd.conf")]
        stack.enter_context(listening(clamd, CLAMD_PORT, "clamd", RUN / "clamd.out", env=env))
        for domain, (proxy, port, _) in PROXIES.items():
            command = [f"{pkg}/usr/sbin/{proxy}", "-d", "3", "-f", str(RUN / f"{domain}.conf")]
            stack.enter_context(
                listening(command, port, f"{proxy} for {domain}", RUN / f"{domain}.out", env=env)
            )
        stack.enter_context(_hold(PROXIES[BUSY][1]))
        yield version(versions)


def _keep_output(out: Path, mta: str) -> None:
    """The proxies' and clamd's output copied beside ``out``."""
    for log in [*sorted(RUN.glob("*.out")), RUN / "clamd.log"]:
        if log.exists():
            shutil.copy(log, out.parent / f"{mta}-{log.stem}.log")


def version(versions: dict[str, str]) -> str:
    """The proxies' versions, for the rows."""
    return (
        f"clamsmtp {versions['clamsmtp']} with clamd {versions['clamav-daemon']}; "
        f"proxsmtp {versions['proxsmtp']}"
    )


RECEIVER = Receiver(PROXIES_CASES, routes_to, "proxy", lambda s: receiving(s.out, s.mta),
                    clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, PROXIES_CASES)
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENTS[MTA])
    with receiving(out, MTA) as behind:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=behind)
