"""Sendmail's notices: Debian's sendmail-bin, unpacked under ``/tmp/mta-sendmail`` (never
installed), run in the foreground (``-bD``) with a ``.cf`` built by m4 from a small ``.mc``
and given with ``-C``; its queue, aliases and tables live in ``/tmp/mta-sendmail/run``.

It listens on 127.0.0.1:``PORT`` and is the final destination of ``linden.test`` (mail.local
over LMTP, with aliases of its own); its mailer table sends ``maple.test`` to the scripted
remote server, ``willow.test`` there too through a mailer that takes at most 10,000 bytes,
``hazel.test`` to a port where nothing listens, ``alder.test`` to a server that never greets
and ``sender.test`` (the notices) to the capture server; anything else goes by DNS
(``quince.test`` has no record: the resolver answers NXDOMAIN). Each destination has a mailer
of its own, because a mailer table entry names a host but not a port. Delay warnings and
the queue lifetime are cut to minutes.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from .cases import Case, collect, load, script_replies, submit
from .destination import Destination
from .host import ENV, Mount, isolated, listening, processes, without_resolving
from .packages import extract
from .packages import version as deb_version
from .receiver import Receiver, Sending
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "sendmail"
PACKAGES = ["sendmail-bin", "sendmail-base", "sendmail-cf", "m4", "liblockfile1"]
ROOT = Path("/tmp/mta-sendmail")
RUN = ROOT / "run"
PORT = 7525  # 2525 + the helper's test port offset (5000)
LOCAL = "linden.test"
REMOTE = "maple.test"
SMALL = "willow.test"  # the scripted server, through a mailer with a 10,000-byte limit
REFUSED = "hazel.test"
SILENT = "alder.test"
NXDOMAIN = "quince.test"
ALIASES = {"ruth.adler": f"ruth.a@{REMOTE}", "postmaster": "root"}
WARN_AFTER = "1m"
LIFETIME = "3m"
QUEUE_RUNS = "15s"
TIMEOUT = 420.0  # seconds to wait for the last notice (lifetime + queue runs + greeting timeouts)

BIN = ROOT / "usr/libexec/sendmail"
CF_DIR = ROOT / "usr/share/sendmail/cf"
LIBS = ROOT / "usr/lib/x86_64-linux-gnu"  # liblockfile, which mail.local needs

# A mailer per destination port, as the stock esmtp mailer ('a': ESMTP) but for its port.
MAILER = (
    "M{name},\tP=[IPC], F=mDFMuXa, S=EnvFromSMTP/HdrFromSMTP, R=EnvToSMTP, E=\\r\\n, "
    "L=990, {limit}T=DNS/RFC822/SMTP, A=TCP $h {port}\n"
)
# The same for a next hop that speaks LMTP over TCP (round 50's Cyrus): 'z' for 'a'.
LMTP_MAILER = MAILER.replace("F=mDFMuXa", "F=mDFMuXz")

MC = """\
divert(-1)
divert(0)dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `mx.{local}')dnl
define(`QUEUE_DIR', `{run}/mqueue')dnl
define(`ALIAS_FILE', `{run}/aliases')dnl
define(`STATUS_FILE', `{run}/statistics')dnl
define(`confPID_FILE', `{run}/sendmail.pid')dnl
define(`confCW_FILE', `{run}/local-host-names')dnl
define(`confSERVICE_SWITCH_FILE', `{run}/service.switch')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confRUN_AS_USER', `root')dnl
define(`confTO_QUEUEWARN', `{warn}')dnl
define(`confTO_QUEUERETURN', `{lifetime}')dnl
define(`confTO_INITIAL', `20s')dnl
define(`confTO_CONNECT', `10s')dnl
define(`confMIN_QUEUE_AGE', `0')dnl
define(`confMAX_MESSAGE_SIZE', `100000')dnl
{settings}FEATURE(`nocanonify')dnl
FEATURE(`accept_unresolvable_domains')dnl
FEATURE(`mailertable', `hash -o {run}/mailertable')dnl
FEATURE(`local_lmtp', `{bin}/mail.local')dnl
MODIFY_MAILER_FLAGS(`LOCAL', `-w')dnl
DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA')dnl
LOCAL_DOMAIN(`{local}')dnl
LOCAL_CONFIG
ELD_LIBRARY_PATH={libs}
MAILER(`local')dnl
MAILER(`smtp')dnl
MAILER_DEFINITIONS
{mailers}"""


# A second instance's settings beside round 21b's (rounds 39-41): the prog mailer's user, and
# no submission daemon on port 587 (another Sendmail may hold it).
BESIDE = "define(`confDEF_USER_ID', `65534:65534')dnl\nFEATURE(`no_default_msa')dnl\n"
# The address a sending daemon's SMTP client binds to (rounds 45-57: the receiving side's
# filters see it).
CLIENT_OPTIONS = "CLIENT_OPTIONS(`Family=inet, Addr={client}')dnl\n"


def unpacked() -> str:
    """Round 21b's unpacked Sendmail, unpacked now only if it is not there (unpacking again
    would replace the binary under another run's daemon); the version of sendmail-bin."""
    debs = sorted((ROOT / "debs").glob("sendmail-bin_*.deb"))
    if debs and (BIN / "sendmail").exists():
        return deb_version(debs[-1])
    return extract(PACKAGES, ROOT)["sendmail-bin"]


def _configure(destination: Destination) -> None:
    configure(destination, RUN, LOCAL, PORT, ALIASES)


def configure(
    destination: Destination,
    run: Path,
    local: str,
    port: int,
    aliases: dict[str, str],
    settings: str = "",
    extra: dict[str, tuple[str, int]] | None = None,
    lmtp: dict[str, tuple[str, int]] | None = None,
) -> None:
    """A fresh ``run`` folder: the queue, the tables (round 21's mailer table, ``aliases``)
    and ``sendmail.cf``, built for the daemon on ``port``, final destination of ``local``, with
    ``settings`` (m4 lines) added to the ``.mc``; ``extra`` routes a domain to a host and port
    of its own (round 40: the daemon itself, a host name with no record); ``lmtp`` does the
    same through a mailer that speaks LMTP (round 50: Cyrus's lmtpd)."""
    if run.exists():
        shutil.rmtree(run)
    queue = run / "mqueue"
    queue.mkdir(parents=True)
    queue.chmod(0o700)
    host = destination.host
    ports = {
        "remote": destination.port,
        "small": destination.port,
        "refused": destination.refused_port,
        "silent": destination.silent_port,
        "capture": destination.capture_port,
    }
    mailers = "".join(
        MAILER.format(name=name, port=port, limit="M=10000, " if name == "small" else "")
        for name, port in ports.items()
    )
    routes = {REMOTE: "remote", SMALL: "small", REFUSED: "refused", SILENT: "silent",
              "sender.test": "capture"}  # fmt: skip
    table = "".join(f"{domain}\t{mailer}:[{host}]\n" for domain, mailer in routes.items())
    for number, (domain, (next_hop, next_port)) in enumerate((extra or {}).items()):
        mailers += MAILER.format(name=f"extra{number}", port=next_port, limit="")
        table += f"{domain}\textra{number}:[{next_hop}]\n"
    for number, (domain, (next_hop, next_port)) in enumerate((lmtp or {}).items()):
        mailers += LMTP_MAILER.format(name=f"lmtp{number}", port=next_port, limit="")
        table += f"{domain}\tlmtp{number}:[{next_hop}]\n"
    (run / "mailertable").write_text(table)
    (run / "aliases").write_text("".join(f"{name}: {to}\n" for name, to in aliases.items()))
    (run / "local-host-names").write_text(f"{local}\n")
    # Host names by DNS: the unknown domain meets the resolver's real answer (NXDOMAIN).
    (run / "service.switch").write_text("hosts\tdns\naliases\tfiles\n")
    mc = MC.format(
        local=local, run=run, bin=BIN, libs=LIBS, port=port, warn=WARN_AFTER,
        lifetime=LIFETIME, mailers=mailers, settings=settings,
    )  # fmt: skip
    (run / "sendmail.mc").write_text(mc)
    m4 = subprocess.run(
        [str(ROOT / "usr/bin/m4"), f"-D_CF_DIR_={CF_DIR}/", str(CF_DIR / "m4/cf.m4"),
         str(run / "sendmail.mc")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    (run / "sendmail.cf").write_text(m4.stdout)
    cf = str(run / "sendmail.cf")
    with (run / "mailertable").open("rb") as entries:
        _run(local, BIN / "makemap", "-C", cf, "hash", str(run / "mailertable"), stdin=entries)
    _run(local, BIN / "sendmail", "-C", cf, "-bi")


def configure_sending(
    run: Path,
    local: str,
    port: int,
    destination: Destination,
    relays: Mapping[str, int],
    *,
    captured: Sequence[str] = (),
    client: str | None = None,
) -> None:
    """``configure`` for a sending daemon beside round 21b's (``BESIDE``) that takes the cases
    on 127.0.0.1:``port``: each of ``relays`` (domain: port) goes to that port of 127.0.0.1,
    ``sender.test`` (the notices) and the ``captured`` domains to the capture server. With
    ``client``, its SMTP client binds to that address (``CLIENT_OPTIONS``)."""
    extra = {domain: ("127.0.0.1", to) for domain, to in relays.items()}
    extra |= dict.fromkeys(captured, (destination.host, destination.capture_port))
    settings = BESIDE if client is None else BESIDE + CLIENT_OPTIONS.format(client=client)
    configure(destination, run, local, port, {"postmaster": "root"}, settings, extra)


def _run(local: str, program: Path, *args: str, stdin: IO[bytes] | None = None) -> None:
    subprocess.run(_named(local, program, *args), check=True, stdin=stdin, env=ENV,
                   capture_output=True)  # fmt: skip


def _named(local: str, program: Path, *args: str, mounts: Sequence[Mount] = ()) -> list[str]:
    """The command in a UTS namespace of its own whose host name is ``mx.<local>`` (and a
    mount namespace with ``mounts``, with any): this machine's name has no domain, and
    Sendmail, unable to qualify it, sleeps a minute at every start; the system's host name is
    left alone."""
    return isolated([str(program), *args], mounts, hostname=f"mx.{local}")


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["sendmail-bin"]
    built = without_resolving(load(MTA), NXDOMAIN)
    script_replies(destination, built)
    _configure(destination)
    return run(destination, built, out, MTA, version, RUN, LOCAL, PORT)


def behind(
    receiver: Receiver,
    mta: str,
    folder: Path,
    local: str,
    port: int,
    out: Path,
    destination: Destination,
) -> list[Row]:
    """The notices of round 21b's unpacked Sendmail (``unpacked``) as the sending MTA in front
    of ``receiver``, from a folder of its own (``configure_sending``: final destination of
    ``local``, the cases taken on 127.0.0.1:``port``, each recipient domain routed to its
    receiving server), the receiving side running while ``run`` submits ``mta``'s cases of
    the round and collects them."""
    built = load(mta, receiver.cases)
    version = unpacked()
    routes = (receiver.sendmail_routes or receiver.routes)()
    configure_sending(folder, local, port, destination, routes, captured=receiver.captured,
                      client=receiver.client(mta))  # fmt: skip
    with receiver.serving(Sending(mta, built, destination, out, port)) as serving:
        version = f"sendmail-{version}; {serving}"
        return run(destination, built, out, mta, version, folder, local, port)


def run(
    destination: Destination,
    built: list[Case],
    out: Path,
    mta: str,
    version: str,
    run: Path,
    local: str,
    port: int,
    mounts: Sequence[Mount] = (),
) -> list[Row]:
    """The daemon of ``run``'s ``sendmail.cf`` (in a mount namespace with ``mounts``, with
    any), ``built`` submitted on ``port`` and the notices collected; stopped on leaving."""
    # -bD: a daemon in the foreground, whose queue runners and mailers stay in its group.
    cf = str(run / "sendmail.cf")
    command = _named(local, BIN / "sendmail", "-C", cf, "-bD", f"-q{QUEUE_RUNS}", mounts=mounts)
    uts = ""
    try:
        with listening(command, port, "sendmail", run / "daemon.log", env=ENV) as daemon:
            uts = os.readlink(f"/proc/{daemon.pid}/ns/uts")
            submit(destination.host, port, built)
            return collect(destination, built, out, mta, version, TIMEOUT)
    finally:
        # Sendmail's queue runners and deliveries may start sessions of their own: any
        # process of this unpacked binary left in this daemon's UTS namespace is killed (never
        # the system's mailers, nor another instance's).
        for pid in processes("exe", str(BIN / "sendmail")):
            if uts and _uts(pid) == uts:
                logger.warning("sendmail process %s outlived the daemon: killed", pid)
                os.kill(pid, signal.SIGKILL)


def _uts(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/ns/uts")
    except OSError:
        return ""
