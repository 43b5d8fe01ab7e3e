"""rspamd's own greylisting run for real (round 57): rspamd 3.4's proxy worker in milter mode
behind a receiving Postfix, its greylist module storing its records in a private Redis, and the
notices the sending MTA writes of its "451 4.7.1 Try again later": this module's Postfix (a
second instance of the system's, ``postfix.configure_sending``, from :data:`CLIENT`),
``greylist_exim`` and ``greylist_sendmail`` the others. Round 55 (``milters_postfix``) had no
Redis and made rspamd's soft reject with the greylist module's words by ``force_actions``.

rspamd runs from Debian 12's package (``packages.extract`` into ``/tmp/mta-r57g/pkg``, never
installed), with its own settings over a copy of the package's ``/etc/rspamd``
(:data:`RSPAMD_LOCAL`); the machine's ``redis-server`` binary is started by this module on its
own loopback address and port (:data:`REDIS`, no persistence, under ``/tmp/mta-r57g``), never
the shared Redis. Mail to ``ulmus.test`` gets a multimap symbol of score 5 (over the package's
greylist action threshold, 4), so the greylist module, told to check mail from local addresses
(``check_local``: the sending MTA is on loopback), soft-rejects it until its window
(``timeout``, :data:`GREYLIST_WINDOW` seconds) has passed since the first try: longer than
every sending MTA's queue lifetime here, so every retry is greylisted again. Mail that passes
is discarded.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import milters_postfix, postfix
from .cases import MIMEDEFANG_CASES, load
from .destination import Destination
from .host import listening, stop
from .packages import extract
from .receiver import Receiver, prepared
from .rows import Row

MTA = "greylist_postfix"
ROOT = Path("/tmp/mta-r57g")
PACKAGES_ROOT = ROOT / "pkg"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 8324  # the sending Postfix (8290's series of the helper's test port offset, 5750)
CLIENT = "127.57.0.3"  # the sending MTA's address, as the receiving Postfix sees it
REDIS = ("127.57.0.1", 8322)  # the private Redis of this module, never the shared one
SENDING = "hickory.test"
RECEIVING = "quercus.test"
MILTER_PORT = 8320
CONTROLLER_PORT = 8321
GREYLIST_WINDOW = 600  # seconds: over Postfix's 70 s, Exim's 60 s and Sendmail's 3 minutes
LISTENERS = {"ulmus.test": (8297, MILTER_PORT)}
PACKAGES = [
    "rspamd", "libhyperscan5", "libicu72", "libluajit-5.1-2", "libluajit-5.1-common",
    "libsodium23", "libunwind8",
]  # fmt: skip

RSPAMD_LOCAL = {
    "worker-proxy.inc": (
        'bind_socket = "127.0.0.1:{port}";\nmilter = yes;\ntimeout = 120s;\n'
        'upstream "local" {{\n  default = yes;\n  self_scan = yes;\n}}\n'
    ),
    "worker-normal.inc": "enabled = false;\n",
    "worker-controller.inc": 'bind_socket = "127.0.0.1:{controller}";\n',
    "logging.inc": 'type = "file";\nfilename = "{root}/rspamd.log";\nlevel = "info";\n',
    "options.inc": 'dns {{ nameserver = ["127.0.0.1:8323"]; timeout = 1s; retransmits = 1; }}\n',
    "redis.conf": 'servers = "{redis}";\n',
    "greylist.conf": "enabled = true;\ncheck_local = true;\ntimeout = {window};\n",
    # a symbol of score 5 for mail to ulmus.test (multimap on the recipient's domain): over the
    # greylist action's threshold, under add_header's
    "multimap.conf": (
        'R57_GREY {{\n  type = "rcpt";\n  filter = "email:domain";\n'
        '  map = "{root}/rspamd-grey-domains.map";\n  score = 5.0;\n}}\n'
    ),
}


def prepare() -> dict[str, str]:
    """Fresh folders, rspamd's packages unpacked, its settings and the receiving instance
    configured; each package's version."""
    milters_postfix.fresh(ROOT)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    milters_postfix.configure_receiving(RECV, RECEIVING, LISTENERS)
    shutil.copytree(PACKAGES_ROOT / "etc" / "rspamd", RECV / "rspamd")
    for folder in ("rspamd-db", "rspamd-run", "redis"):
        (RECV / folder).mkdir()
        shutil.chown(RECV / folder, "nobody", "nogroup")
    (RECV / "rspamd-grey-domains.map").write_text("ulmus.test\n")
    for name, text in RSPAMD_LOCAL.items():
        settings = text.format(port=MILTER_PORT, controller=CONTROLLER_PORT, root=RECV,
                               redis=f"{REDIS[0]}:{REDIS[1]}", window=GREYLIST_WINDOW)  # fmt: skip
        (RECV / "rspamd" / "local.d" / name).write_text(settings)
    return versions


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return milters_postfix.listener_ports(LISTENERS)


@contextmanager
def _redis() -> Iterator[None]:
    """The machine's redis-server on :data:`REDIS`, no persistence, as nobody, once it
    answers."""
    host, port = REDIS
    command = [
        "setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
        "redis-server", "--bind", host, "--port", str(port), "--save", "", "--appendonly", "no",
        "--dir", str(RECV / "redis"), "--daemonize", "no", "--protected-mode", "no",
    ]  # fmt: skip
    with (RECV / "redis.out").open("wb") as output:
        daemon = subprocess.Popen(command, start_new_session=True, stdout=output, stderr=output)
    try:
        deadline = time.monotonic() + milters_postfix.STARTUP
        while True:
            try:
                with socket.create_connection(REDIS, timeout=1) as connection:
                    connection.sendall(b"PING\r\n")
                    if connection.recv(16).startswith(b"+PONG"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the private redis-server did not answer within {milters_postfix.STARTUP:.0f}"
                    f" s; see {RECV / 'redis.out'}"
                )
            time.sleep(0.2)
        yield
    finally:
        stop(daemon)


def _rspamd(stack: ExitStack) -> None:
    """rspamd (round 55's :func:`~milters_postfix.rspamd_command`), stopped on leaving
    ``stack``."""
    command, env = milters_postfix.rspamd_command(PACKAGES_ROOT, RECV)
    log = RECV / "rspamd.out"
    stack.enter_context(
        listening(command, MILTER_PORT, "rspamd", log, env=env, timeout=milters_postfix.STARTUP)
    )


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """Redis, rspamd and the receiving instance while open; its log and rspamd's are copied
    beside ``out`` on leaving."""
    with ExitStack() as stack:
        stack.enter_context(_redis())
        _rspamd(stack)
        etc = str(RECV / "etc")
        subprocess.run(["postfix", "-c", etc, "start"], check=True, capture_output=True)
        stack.callback(shutil.copy, RECV / "rspamd.log", out.parent / f"{mta}-rspamd.log")
        stack.callback(shutil.copy, RECV / "maillog", out.parent / f"{mta}-receiving.log")
        stack.callback(subprocess.run, ["postfix", "-c", etc, "stop"], check=False,
                       capture_output=True)  # fmt: skip
        yield


def version(versions: dict[str, str]) -> str:
    """rspamd's and Redis' versions, for the rows."""
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True)
    number = redis.stdout.split("v=")[1].split()[0] if "v=" in redis.stdout else "?"
    return f"rspamd {versions['rspamd']}; redis-server {number}"


RECEIVER = Receiver(MIMEDEFANG_CASES, routes_to, "milter",
                    prepared(prepare, receiving, version), clients=CLIENT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, MIMEDEFANG_CASES)
    versions = prepare()
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENT)
    with receiving(out, MTA):
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version(versions))
