"""Content filters run for real as milters behind a receiving Postfix (round 55): ClamAV's
clamav-milter with clamd, and spamass-milter with SpamAssassin's spamd, and the notices the
sending MTA writes of their refusals: this module's Postfix (a second instance of the system's,
``postfix.configure``, from :data:`CLIENT`), ``milters_exim`` and ``milters_sendmail`` the
others. Round 23 (``filters_postfix``) could only script these programs' words.

The filters run from Debian 12's packages (``packages.extract`` into ``/tmp/mta-r55/pkg``,
never installed), in a mount namespace of their own where ``/usr/bin`` is seen through an
overlay holding the package's ``spamc`` (spamass-milter runs ``/usr/bin/spamc``). clamd reads
one signature database of the harness's own (:data:`SIGNATURES`: the EICAR test string as a
body signature; no freshclam, no network); spamd reads SpamAssassin's shipped rules (its
``.pre`` files copied into a site folder of ours), local tests only (``-L``): the GTUBE test
string scores 1000. The receiving instance (under ``/tmp/mta-r55/recv``) has one listener per
recipient domain (:data:`LISTENERS`), each with its milter: clamav-milter with its default
``RejectMsg`` (``larch.test``), with a ``RejectMsg`` of ours (``linden.test``), one whose clamd
is down (``mulberry.test``: ``OnFail Defer``), spamass-milter rejecting over a score (``-r 5``,
``myrtle.test``) and one whose spamd is down (``nutmeg.test``: spamc told to fail, ``-x``;
spamass-milter passes the message on, so no case uses it), and rspamd 3.4's proxy worker in
milter mode (``olive.test``), with its own settings over a copy of the package's
``/etc/rspamd`` (:data:`RSPAMD_LOCAL`; no Redis: its greylist module is not used), which also
soft-rejects all mail to ``pine.test`` (a multimap symbol on the recipient's domain and a
``force_actions`` rule with the greylist module's words, "Try again later"). Mail that passes
is discarded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import MILTER_CASES, load
from .destination import Destination
from .host import Namespace, Overlay, listening, write_file
from .packages import extract
from .receiver import Receiver, prepared
from .rows import Row

MTA = "milters_postfix"
ROOT = Path("/tmp/mta-r55")
PACKAGES_ROOT = ROOT / "pkg"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 8040  # 2540 + the helper's test port offset (5500): the sending Postfix
CLAMD_PORT = 8053
CLAMD_DOWN_PORT = 8054  # nothing listens here: the clamd of mulberry.test's milter is down
SPAMD_PORT = 8056
SPAMD_DOWN_PORT = 8058  # nothing listens here: the spamd of nutmeg.test's milter is down
# How long a filter may take to listen: rspamd 3.4 took ~77 s to start on a loaded machine,
# spamd compiles SpamAssassin's rules first.
STARTUP = 300.0
CLIENT = "127.55.0.2"  # the sending MTA's address, as the receiving Postfix sees it
SENDING = "hornbeam.test"
RECEIVING = "juniper.test"
CUSTOM_REJECT = "Virus found in your message: %v"
# recipient domain: (the receiving instance's listener, its milter's port)
LISTENERS = {
    "larch.test": (8043, 8050),
    "linden.test": (8044, 8051),
    "mulberry.test": (8045, 8052),
    "myrtle.test": (8046, 8055),
    "nutmeg.test": (8047, 8057),
    "olive.test": (8048, 8060),
    "pine.test": (8049, 8060),  # rspamd again: its soft reject for this recipient domain
}
RSPAMD_CONTROLLER_PORT = 8061
PACKAGES = [
    "clamav-daemon", "clamav-milter", "libclamav12", "libmspack0", "libmilter1.0.1",
    "spamass-milter", "spamassassin", "spamd", "spamc", "libmail-dkim-perl",
    "libnet-dns-perl", "libnetaddr-ip-perl", "libmailtools-perl", "libdigest-hmac-perl",
    "libnet-ip-perl", "libmail-authenticationresults-perl",
    "rspamd", "libhyperscan5", "libicu72", "libluajit-5.1-2", "libluajit-5.1-common",
    "libsodium23", "libunwind8",
]  # fmt: skip
# the EICAR anti-virus test string (68 bytes), as a ClamAV body signature (.ndb: any file type,
# anywhere) under a name of this harness's own; clamd reports it "Local.Test.EICAR.UNOFFICIAL"
EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURES = f"Local.Test.EICAR:0:*:{EICAR.hex()}\n"

CLAMD_CONF = """\
Foreground yes
LogFile {root}/clamd.log
DatabaseDirectory {root}/clamav-db
TCPSocket {port}
TCPAddr 127.0.0.1
PidFile {root}/clamd.pid
TemporaryDirectory {root}/tmp
"""

MILTER_CONF = """\
Foreground yes
MilterSocket inet:{port}@127.0.0.1
ClamdSocket tcp:127.0.0.1:{clamd}
PidFile {root}/clamav-milter-{port}.pid
TemporaryDirectory {root}/tmp
OnInfected Reject
OnFail Defer
LogFile {root}/clamav-milter-{port}.log
LogInfected Full
"""

SPAMD_SITE = """\
use_bayes 0
use_auto_whitelist 0
bayes_auto_learn 0
"""

# rspamd's own settings over the package's /etc/rspamd (copied under the receiving folder):
# its proxy worker in milter mode scanning by itself (self_scan), no normal worker, its DNS
# to a port where nothing answers (no network; GTUBE needs none)
RSPAMD_LOCAL = {
    "worker-proxy.inc": (
        'bind_socket = "127.0.0.1:{port}";\nmilter = yes;\ntimeout = 120s;\n'
        'upstream "local" {{\n  default = yes;\n  self_scan = yes;\n}}\n'
    ),
    "worker-normal.inc": "enabled = false;\n",
    "worker-controller.inc": 'bind_socket = "127.0.0.1:{controller}";\n',
    "logging.inc": 'type = "file";\nfilename = "{root}/rspamd.log";\nlevel = "info";\n',
    "options.inc": 'dns {{ nameserver = ["127.0.0.1:8062"]; timeout = 1s; retransmits = 1; }}\n',
    # a symbol for mail to pine.test (multimap on the recipient's domain) and the soft reject
    # force_actions gives it, with the words of rspamd's greylist module ("Try again later")
    "multimap.conf": (
        'R55_SOFT {{\n  type = "rcpt";\n  filter = "email:domain";\n'
        '  map = "{root}/rspamd-soft-domains.map";\n  score = 0.0;\n}}\n'
    ),
    "force_actions.conf": (
        'rules {{\n  R55_SOFT_REJECT {{\n    action = "soft reject";\n'
        '    expression = "R55_SOFT";\n    message = "Try again later";\n  }}\n}}\n'
    ),
}

RECV_MAIN = """
mynetworks = 127.0.0.1/32
relay_domains = {domains}
milter_default_action = tempfail
local_transport = discard:
"""


def fresh(root: Path) -> None:
    """``root`` made (mode 755) without the sending and receiving folders of an earlier run."""
    for leftover in ("send", "recv"):
        shutil.rmtree(root / leftover, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)


def configure_receiving(
    recv: Path, hostname: str, listeners: dict[str, tuple[int, int]], recv_main: str = RECV_MAIN
) -> None:
    """The receiving instance under ``recv``: one listener per recipient domain of
    ``listeners`` (domain: (its port, its milter's port)), each with its milter, mail to them
    discarded, and ``recv_main`` (given the domains; :data:`RECV_MAIN` unless given) added to
    its main.cf."""
    master = "".join(
        f"127.0.0.1:{port} inet n - n - - smtpd -o smtpd_milters=inet:127.0.0.1:{milter}\n"
        for port, milter in listeners.values()
    )
    routes = dict.fromkeys(listeners, "discard:")
    postfix.configure(recv, hostname, master + postfix.SERVICES, routes, {"postmaster": "root"})
    with (recv / "etc" / "main.cf").open("a") as main:
        main.write(recv_main.format(domains=", ".join(listeners)))


def listener_ports(listeners: dict[str, tuple[int, int]]) -> dict[str, int]:
    """Each recipient domain of ``listeners`` and the receiving instance's port it goes to."""
    return {domain: port for domain, (port, _) in listeners.items()}


def prepare() -> dict[str, str]:
    """Fresh folders, the filters' packages unpacked, their settings and the receiving
    instance configured; each package's version."""
    fresh(ROOT)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    configure_receiving(RECV, RECEIVING, LISTENERS)
    for folder in ("clamav-db", "tmp", "site", "bin"):
        (RECV / folder).mkdir()
    (RECV / "tmp").chmod(0o1777)
    write_file(RECV / "clamav-db" / "local.ndb", SIGNATURES)
    write_file(RECV / "clamd.conf", CLAMD_CONF.format(root=RECV, port=CLAMD_PORT))
    for domain, clamd, reject in (
        ("larch.test", CLAMD_PORT, ""),
        ("linden.test", CLAMD_PORT, f'RejectMsg "{CUSTOM_REJECT}"\n'),
        ("mulberry.test", CLAMD_DOWN_PORT, ""),
    ):
        port = LISTENERS[domain][1]
        text = MILTER_CONF.format(port=port, clamd=clamd, root=RECV) + reject
        write_file(RECV / f"clamav-milter-{port}.conf", text)
    site = PACKAGES_ROOT / "etc" / "spamassassin"
    for pre in site.glob("*.pre"):
        shutil.copy(pre, RECV / "site" / pre.name)
    write_file(RECV / "site" / "local.cf", SPAMD_SITE)
    shutil.copy(PACKAGES_ROOT / "usr/bin/spamc", RECV / "bin" / "spamc")
    shutil.copytree(PACKAGES_ROOT / "etc" / "rspamd", RECV / "rspamd")
    for folder in ("rspamd-db", "rspamd-run"):
        (RECV / folder).mkdir()
        shutil.chown(RECV / folder, "nobody", "nogroup")
    write_file(RECV / "rspamd-soft-domains.map", "pine.test\n")
    for name, text in RSPAMD_LOCAL.items():
        settings = text.format(port=LISTENERS["olive.test"][1], controller=RSPAMD_CONTROLLER_PORT,
                               root=RECV)  # fmt: skip
        write_file(RECV / "rspamd" / "local.d" / name, settings)
    return versions


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return listener_ports(LISTENERS)


def _daemons(space: Namespace, stack: ExitStack) -> None:
    """clamd, the clamav-milters, spamd and the spamass-milters in ``space``, each stopped on
    leaving ``stack``."""
    pkg = PACKAGES_ROOT
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH": f"{pkg}/usr/lib/x86_64-linux-gnu",
    }
    clamd = [f"{pkg}/usr/sbin/clamd", "-c", str(RECV / "clamd.conf")]
    stack.enter_context(
        listening(space.inside(*clamd), CLAMD_PORT, "clamd", RECV / "clamd.out", env=env,
                  timeout=STARTUP)
    )  # fmt: skip
    for domain in ("larch.test", "linden.test", "mulberry.test"):
        port = LISTENERS[domain][1]
        command = [f"{pkg}/usr/sbin/clamav-milter", "-c", str(RECV / f"clamav-milter-{port}.conf")]
        stack.enter_context(
            listening(space.inside(*command), port, f"clamav-milter for {domain}",
                      RECV / f"clamav-milter-{port}.out", env=env, timeout=STARTUP)
        )  # fmt: skip
    spamd = [
        "perl", "-T", f"-I{pkg}/usr/share/perl5", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36",
        f"{pkg}/usr/sbin/spamd", "-L", "-s", "stderr", "-i", "127.0.0.1", "-p", str(SPAMD_PORT),
        f"--configpath={pkg}/usr/share/spamassassin", f"--siteconfigpath={RECV / 'site'}",
        "-u", "nobody", "-x", f"--pidfile={RECV / 'spamd.pid'}",
    ]  # fmt: skip
    stack.enter_context(
        listening(space.inside(*spamd), SPAMD_PORT, "spamd", RECV / "spamd.out", env=env,
                  timeout=STARTUP)
    )  # fmt: skip
    for domain, spamd_port in (("myrtle.test", SPAMD_PORT), ("nutmeg.test", SPAMD_DOWN_PORT)):
        port = LISTENERS[domain][1]
        command = [
            f"{pkg}/usr/sbin/spamass-milter", "-p", f"inet:{port}@127.0.0.1", "-r", "5",
            "--", "-d", "127.0.0.1", "-p", str(spamd_port), "-x",
        ]  # fmt: skip
        stack.enter_context(
            listening(space.inside(*command), port, f"spamass-milter for {domain}",
                      RECV / f"spamass-milter-{port}.out", env=env, timeout=STARTUP)
        )  # fmt: skip


def rspamd_command(pkg: Path, folder: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run the rspamd unpacked under ``pkg`` in the
    foreground with ``folder``'s configuration (``folder/rspamd/rspamd.conf``), its database,
    run and log folders in ``folder``: the package's own paths (under /etc, /usr/share and
    /var/lib) given as variables. Rounds 55, 57, 69 and 70 run it this way."""
    share = pkg / "usr/share/rspamd"
    paths = {
        "CONFDIR": folder / "rspamd", "LOCAL_CONFDIR": folder / "rspamd",
        "RULESDIR": share / "rules", "LUALIBDIR": share / "lualib",
        "PLUGINSDIR": share / "plugins", "SHAREDIR": share, "WWWDIR": share / "www",
        "DBDIR": folder / "rspamd-db", "RUNDIR": folder / "rspamd-run", "LOGDIR": folder,
    }  # fmt: skip
    command = [
        f"{pkg}/usr/bin/rspamd", "-f", "-u", "nobody", "-g", "nogroup",
        "-c", str(folder / "rspamd" / "rspamd.conf"),
        *(f"--var={name}={path}" for name, path in paths.items()),
    ]  # fmt: skip
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH": f"{pkg}/usr/lib/x86_64-linux-gnu:{pkg}/usr/lib/rspamd",
    }
    return command, env


def wait_pong(port: int, daemon: subprocess.Popen[bytes], timeout: float) -> None:
    """Return once rspamd's worker on 127.0.0.1:``port`` answers ``/ping`` with "pong"; an
    error as soon as ``daemon`` has stopped, or after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            url = f"http://127.0.0.1:{port}/ping"
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.read().strip() == b"pong":
                    return
        except OSError:
            pass
        if daemon.poll() is not None:
            raise RuntimeError("rspamd stopped before it answered")
        if time.monotonic() > deadline:
            raise RuntimeError("rspamd did not answer /ping in time")
        time.sleep(1)


def _rspamd(stack: ExitStack) -> None:
    """rspamd (:func:`rspamd_command`), stopped on leaving ``stack``."""
    command, env = rspamd_command(PACKAGES_ROOT, RECV)
    port = LISTENERS["olive.test"][1]
    stack.enter_context(
        listening(command, port, "rspamd", RECV / "rspamd.out", env=env, timeout=STARTUP)
    )


def start_receiving(recv: Path, space: Namespace, stack: ExitStack, out: Path, mta: str) -> None:
    """The receiving instance under ``recv`` started in ``space``; on leaving ``stack`` it is
    stopped and its log copied beside ``out``."""
    etc = str(recv / "etc")
    space.run("postfix", "-c", etc, "start")
    stack.callback(shutil.copy, recv / "maillog", out.parent / f"{mta}-receiving.log")
    stack.callback(space.run, "postfix", "-c", etc, "stop", check=False)


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """The filters and the receiving instance, in their namespace, while open; its log is
    copied beside ``out`` on leaving."""
    with ExitStack() as stack:
        space = stack.enter_context(
            Namespace("receiving postfix", [Overlay("/usr/bin", lower=RECV / "bin")], grace=10.0)
        )
        _daemons(space, stack)
        _rspamd(stack)
        start_receiving(RECV, space, stack, out, mta)
        yield


def version(versions: dict[str, str]) -> str:
    """The filters' versions, for the rows."""
    return (
        f"clamav-milter {versions['clamav-milter']}; spamass-milter "
        f"{versions['spamass-milter']}; spamd {versions['spamd']}; rspamd {versions['rspamd']}"
    )


RECEIVER = Receiver(MILTER_CASES, routes_to, "milter", prepared(prepare, receiving, version),
                    clients=CLIENT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, MILTER_CASES)
    versions = prepare()
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENT)
    with receiving(out, MTA):
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version(versions))
