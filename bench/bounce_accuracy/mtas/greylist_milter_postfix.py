"""milter-greylist run for real as a milter behind a receiving Postfix (round 79): its
greylisting, with a delay longer than every sending MTA's queue lifetime, in its default words
and in its ``quiet`` ones, and its blacklist of a client a DNSBL lists; and the notices the
sending MTA writes of them: this module's Postfix (a second instance of the system's,
``postfix.configure_sending``, from :data:`CLIENT`), ``greylist_milter_exim`` and
``greylist_milter_sendmail`` the others. Round 57 (``greylist_postfix``) ran rspamd's
greylisting, round 55 (``milters_postfix``) content milters, the same way.

Debian 12 has no milter-greylist package, so it is built (:func:`build`) from a snapshot of its
public repository (ryoqun/milter-greylist at :data:`COMMIT`, milter-greylist 4.3.3 with the
"targrey" changes; read from :data:`MIRROR`, a local git copy, ``git archive``), against
Debian 12's libmilter, with Debian's flex, bison and m4 (all ``packages.extract`` under
``/tmp/r79-greylist/pkg``, never installed), ``--enable-dnsrbl``. Two daemons run (each
``-D``, in the foreground, with a configuration file of ours, :data:`CONF`), in a mount
namespace where a private ``/etc/resolv.conf`` names the harness's DNS server
(``dnsserver.py`` on :data:`DNS_ADDRESS`), which lists :data:`CLIENT` in :data:`DNSBL`: one
greylists mail to ``alder-r79.test`` (``racl greylist``, delay an hour) and blacklists the
client for mail to ``birch-r79.test`` (``racl blacklist ... dnsrbl``, its default code and
words), the other does the same greylisting with ``quiet`` (``cedar-r79.test``). The receiving
instance (under ``/tmp/r79-greylist/recv``) has one listener per recipient domain
(:data:`LISTENERS`), each with its daemon as milter. Mail that passes is discarded.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import milters_postfix, postfix
from .cases import GREYLIST_MILTER_CASES, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import ENV, Bind, Namespace, listening, write_file
from .packages import extract, unpack_commit
from .receiver import Receiver, prepared
from .rows import Row

MTA = "greylist_milter_postfix"
ROOT = Path("/tmp/r79-greylist")
PACKAGES_ROOT = ROOT / "pkg"
SOURCE = ROOT / "src"
SEND = ROOT / "send"
RECV = ROOT / "recv"
MIRROR = Path("/work/.mirror/ryoqun+milter-greylist/repo")
COMMIT = "b0a039272d4daaaf76cc66b897073bfa4123ef52"  # "[targrey] Part 7.5" (2009-09-02), 4.3.3
PORT = 19850  # the sending Postfix (19850-19874: round 79's ports)
MILTER_PORT = 19856
QUIET_MILTER_PORT = 19857
DNS_ADDRESS = "127.79.0.1"  # the DNS server of this round
CLIENT = "127.79.0.2"  # the sending MTA's address, as the receiving Postfix sees it
SENDING = "rowan-r79.test"
RECEIVING = "spruce-r79.test"
DNSBL = "dnsbl.larix-r79.test"
LISTED = "2.0.79.127"  # CLIENT reversed, as DNSBLs are asked
DELAY = "1h"  # the greylisting delay: over Postfix's 70 s, Exim's 60 s and Sendmail's 3 minutes
# recipient domain: (the receiving instance's listener, its milter's port)
LISTENERS = {
    "alder-r79.test": (19853, MILTER_PORT),
    "birch-r79.test": (19854, MILTER_PORT),
    "cedar-r79.test": (19855, QUIET_MILTER_PORT),
}
PACKAGES = ["libmilter-dev", "libmilter1.0.1", "flex", "bison", "m4", "libfl-dev", "libfl2"]

# greylist.conf(5): the daemon's own settings, its racl clauses; no text of ours in a reply
CONF = """\
pidfile "{run}/milter-greylist-{port}.pid"
dumpfile "{run}/greylist-{port}.db"
socket "inet:{port}@127.0.0.1"
greylist {delay}
{quiet}
dnsrbl "R79" {dnsbl} 127.0.0.2/32
racl blacklist rcpt /.*@birch-r79\\.test/ dnsrbl "R79"
racl greylist rcpt /.*@alder-r79\\.test/ delay {delay}
racl greylist rcpt /.*@cedar-r79\\.test/ delay {delay}
racl whitelist default
"""


def build() -> Path:
    """milter-greylist's binary, from the snapshot at :data:`COMMIT` (once: a build of that
    commit already there is kept), built with the unpacked flex, bison, m4 and libmilter."""
    binary = SOURCE / "milter-greylist"
    stamp = ROOT / "built"
    if stamp.exists() and stamp.read_text() == COMMIT and binary.exists():
        return binary
    unpack_commit(MIRROR, COMMIT, SOURCE)
    tools = PACKAGES_ROOT / "usr"
    env = {
        "PATH": f"{tools}/bin:{ENV['PATH']}",
        "M4": f"{tools}/bin/m4",
        "BISON_PKGDATADIR": f"{tools}/share/bison",
    }
    # -fcommon: the 2009 source defines globals in headers, which GCC 10+ refuses by default
    flags = f"-fcommon -O1 -w -I{tools}/include"
    subprocess.run(
        ["./configure", f"--with-libmilter={tools}", "--enable-dnsrbl", f"CFLAGS={flags}",
         f"LDFLAGS=-L{tools}/lib/x86_64-linux-gnu"],
        cwd=SOURCE, env=env, check=True, capture_output=True,
    )  # fmt: skip
    # one job: the two grammars are both made through bison's y.tab.c
    subprocess.run(["make", "milter-greylist"], cwd=SOURCE, env=env, check=True,
                   capture_output=True)  # fmt: skip
    stamp.write_text(COMMIT)
    return binary


def table() -> Table:
    """What the DNS server answers: :data:`CLIENT` listed in :data:`DNSBL`."""
    return Table(
        {
            f"{LISTED}.{DNSBL}": Name(
                (("A", "127.0.0.2"), ("TXT", f"{CLIENT} is listed; see http://{DNSBL}/"))
            )
        }
    )


def prepare() -> dict[str, str]:
    """Fresh folders, the build's packages unpacked, milter-greylist built, its settings and
    the receiving instance configured; each package's version and the build's."""
    milters_postfix.fresh(ROOT)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    build()
    milters_postfix.configure_receiving(RECV, RECEIVING, LISTENERS)
    run = RECV / "run"
    run.mkdir()
    for port, quiet in ((MILTER_PORT, ""), (QUIET_MILTER_PORT, "quiet")):
        text = CONF.format(run=run, port=port, delay=DELAY, quiet=quiet, dnsbl=DNSBL)
        write_file(RECV / f"greylist-{port}.conf", text)
    versions["milter-greylist"] = f"4.3.3 (ryoqun/milter-greylist {COMMIT[:7]})"
    return versions


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return milters_postfix.listener_ports(LISTENERS)


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """The DNS server, the two milter-greylist daemons and the receiving instance, in their
    namespace, while open; the instance's log and the daemons' output are copied beside
    ``out`` on leaving."""
    resolv = resolv_conf(RECV / "resolv.conf", DNS_ADDRESS)
    env = {**ENV, "LD_LIBRARY_PATH": f"{PACKAGES_ROOT}/usr/lib/x86_64-linux-gnu"}
    with ExitStack() as stack:
        stack.enter_context(serving(table(), DNS_ADDRESS))
        space = stack.enter_context(
            Namespace("receiving postfix", [Bind(resolv, "/etc/resolv.conf")], grace=10.0)
        )
        for port in (MILTER_PORT, QUIET_MILTER_PORT):
            command = [str(SOURCE / "milter-greylist"), "-D", "-f",
                       str(RECV / f"greylist-{port}.conf")]  # fmt: skip
            log = RECV / f"milter-greylist-{port}.out"
            stack.callback(_keep, log, out.parent / f"{mta}-milter-greylist-{port}.log")
            stack.enter_context(
                listening(space.inside(*command), port, f"milter-greylist on {port}", log, env=env)
            )
        milters_postfix.start_receiving(RECV, space, stack, out, mta)
        yield


def _keep(log: Path, copy: Path) -> None:
    if log.exists():
        shutil.copy(log, copy)


def version(versions: dict[str, str]) -> str:
    """milter-greylist's version and libmilter's, for the rows."""
    return f"milter-greylist {versions['milter-greylist']}; libmilter {versions['libmilter1.0.1']}"


RECEIVER = Receiver(GREYLIST_MILTER_CASES, routes_to, "milter",
                    prepared(prepare, receiving, version), clients=CLIENT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, GREYLIST_MILTER_CASES)
    versions = prepare()
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENT)
    with receiving(out, MTA):
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version(versions))
