"""Courier's notices: Debian's courier-mta (with courier-base, courier-authlib and the libraries
the system lacks), unpacked under ``/tmp/mta-courier`` (never installed).

Courier's paths (``/etc/courier``, ``/var/lib/courier``, ``/run/courier``, ``/usr/lib/courier``)
and its user (``courier``) are compiled in. So it runs in a mount and UTS namespace of its own,
held open by a ``sleep`` that the namespace's root starts after laying overlays over the
system's folders: ``/usr`` with the unpacked packages over it (read only), ``/etc``, ``/var``
and ``/run`` each with a writable layer under ``/tmp/mta-courier/run``, where Courier's
settings, a copy of ``passwd`` and ``group`` adding its user, its queue and its sockets live.
The system's files are never changed; every command (``makealiases``, ``authdaemond start``,
``courier start``, ``sendmail``) enters that namespace with ``nsenter``. The namespace's host
name is ``mx.spruce.test``.

Courier is the final destination of ``spruce.test`` (aliases, and the system's users through
authdaemond's PAM module: any other name is an unknown user); its ``esmtproutes`` send
``larch.test`` to the scripted remote server, ``holly.test`` to a port where nothing listens,
``aspen.test`` to a server that never greets and ``sender.test`` (the notices) to the capture
server; anything else goes by DNS (``thistle.test`` has no record: the resolver answers
NXDOMAIN). Mail is handed to it as an application does, with its ``sendmail`` on the command
line: its SMTP server would refuse a local unknown user in the session, with no notice.
Delay warnings after a minute, a queue lifetime of three, retries every 15 s.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .cases import Case, collect, load, message
from .destination import Destination
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "courier"
PACKAGES = [
    "courier-mta", "courier-base", "courier-authlib", "courier-authdaemon",
    "courier-authlib-userdb", "libcourier-unicode4", "libidn12", "libgamin0", "libltdl7",
    "libnet-cidr-perl", "libpcre3",
]  # fmt: skip
ROOT = Path("/tmp/mta-courier")
RUN = ROOT / "run"
LOCAL = "spruce.test"
REMOTE = "larch.test"
REFUSED = "holly.test"
SILENT = "aspen.test"
NXDOMAIN = "thistle.test"
ALIASES = {"ilse.tann": f"ilse.t@{REMOTE}", "postmaster": "root"}
COURIER_ID = 64992  # the namespace's ``courier`` user and group (the system has none)
SETTINGS = {
    "me": f"mx.{LOCAL}",
    "defaultdomain": LOCAL,
    "locals": f"localhost\n{LOCAL}",
    "queuetime": "3m",
    "warntime": "1m",
    "retryalpha": "15s",
    "retrybeta": "3",
    "retrygamma": "15s",
    "retrymaxdelta": "1",
    "esmtptimeoutconnect": "5",
    "esmtptimeouthelo": "10",
}
TIMEOUT = 330.0  # seconds to wait for the last notice (the lifetime, 3 minutes, and retries)

# Run as the namespace's root: the overlays, the host name, then the command.
ENTER = (
    'mount -t overlay overlay -o "lowerdir=$1/usr:/usr" /usr && '
    'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$2/etc,workdir=$2/etc-work" /etc && '
    'mount -t overlay overlay -o "lowerdir=/var,upperdir=$2/var,workdir=$2/var-work" /var && '
    'mount -t overlay overlay -o "lowerdir=/run,upperdir=$2/run,workdir=$2/run-work" /run && '
    'hostname "$3" && shift 3 && exec "$@"'
)


def _configure(destination: Destination) -> None:
    if RUN.exists():
        shutil.rmtree(RUN)
    for folder in ("etc", "etc-work", "var/lib", "var-work", "run/courier/authdaemon",
                   "run-work"):  # fmt: skip
        (RUN / folder).mkdir(parents=True)
    shutil.copytree(ROOT / "etc/courier", RUN / "etc/courier", symlinks=True)
    shutil.copytree(ROOT / "var/lib/courier", RUN / "var/lib/courier", symlinks=True)
    passwd = Path("/etc/passwd").read_text()
    passwd += f"courier:x:{COURIER_ID}:{COURIER_ID}:Courier:/var/lib/courier:/usr/sbin/nologin\n"
    (RUN / "etc/passwd").write_text(passwd)
    (RUN / "etc/group").write_text(Path("/etc/group").read_text() + f"courier:x:{COURIER_ID}:\n")
    etc = RUN / "etc/courier"
    for name, value in SETTINGS.items():
        (etc / name).write_text(value + "\n")
    host = destination.host
    routes = {REMOTE: destination.port, REFUSED: destination.refused_port,
              SILENT: destination.silent_port, "sender.test": destination.capture_port}  # fmt: skip
    (etc / "esmtproutes").write_text(
        "".join(f"{domain}: [{host}],{port}\n" for domain, port in routes.items())
    )
    (etc / "aliases/system").write_text("".join(f"{n}: {to}\n" for n, to in ALIASES.items()))
    # The scripted server offers no STARTTLS; Debian's default would look for it anyway.
    courierd = (etc / "courierd").read_text()
    (etc / "courierd").write_text(courierd.replace("ESMTP_USE_STARTTLS=1", "ESMTP_USE_STARTTLS=0"))
    for tree in (RUN / "var/lib/courier", RUN / "run/courier"):
        for path in (tree, *tree.rglob("*")):
            os.chown(path, COURIER_ID, COURIER_ID, follow_symlinks=False)
    for path in (etc, *etc.rglob("*")):
        os.chown(path, 0, COURIER_ID, follow_symlinks=False)


def _inside(holder: subprocess.Popen[bytes], *command: str) -> list[str]:
    return ["nsenter", "-t", str(holder.pid), "-m", "-u", *command]


def _run(holder: subprocess.Popen[bytes], *command: str) -> None:
    subprocess.run(_inside(holder, *command), check=True, capture_output=True, timeout=60)


def _send(holder: subprocess.Popen[bytes], case: Case, number: int) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    raw = message(case, number).replace(b"\r\n", b"\n")  # a local program hands over LF lines
    done = subprocess.run(
        _inside(holder, "/usr/sbin/sendmail", "-f", case.sender, *case.recipients),
        input=raw, env=env, capture_output=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        logger.warning("%s: sendmail refused it (%s): %s", case.name, done.returncode,
                       done.stderr)  # fmt: skip


def _has_no_address(domain: str) -> bool:
    try:
        socket.getaddrinfo(domain, 25)
    except socket.gaierror as error:
        return error.errno == socket.EAI_NONAME
    return False


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["courier-mta"]
    built = load(MTA)
    if not _has_no_address(NXDOMAIN):
        logger.warning("%s resolves here: its case would not be an unknown domain", NXDOMAIN)
        built = [c for c in built if not any(a.endswith("@" + NXDOMAIN) for a in c.recipients)]
    for case in built:
        for address, reply in case.scripts.items():
            destination.script(address, reply)
    _configure(destination)
    command = ["unshare", "--mount", "--uts", "sh", "-c", ENTER, "sh", str(ROOT), str(RUN),
               f"mx.{LOCAL}", "sleep", "infinity"]  # fmt: skip
    holder = subprocess.Popen(command, start_new_session=True)
    namespace = _namespace_of(holder)
    try:
        _run(holder, "makealiases")
        _run(holder, "authdaemond", "start")
        _run(holder, "courier", "start")
        for number, case in enumerate(built, start=1):
            _send(holder, case, number)
        return collect(destination, built, out, MTA, version, TIMEOUT)
    finally:
        _stop(holder, namespace)


def _namespace_of(holder: subprocess.Popen[bytes], timeout: float = 10.0) -> str:
    """The holder's mount namespace, once it has entered its own (``unshare`` runs first in
    the system's)."""
    system = os.readlink("/proc/self/ns/mnt")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{holder.pid}/cmdline").read_bytes().startswith(b"sleep"):
                found = os.readlink(f"/proc/{holder.pid}/ns/mnt")
                if found != system:
                    return found
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the namespace for Courier did not come up")


def _stop(holder: subprocess.Popen[bytes], namespace: str) -> None:
    """Stop Courier and authdaemond, then every process left in the namespace (Courier's
    daemons leave the holder's process group), then the holder: the overlays go with it."""
    for command in (("courier", "stop"), ("authdaemond", "stop")):
        subprocess.run(_inside(holder, *command), capture_output=True, check=False, timeout=60)
    deadline = time.monotonic() + 10
    while _in(namespace, holder.pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    for pid in _in(namespace, holder.pid):
        logger.warning("courier process %s outlived 'courier stop': killed", pid)
        os.kill(pid, signal.SIGKILL)
    holder.kill()
    holder.wait()


def _in(namespace: str, holder: int) -> list[int]:
    """Processes in ``namespace`` but the holder."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != holder:
            try:
                if os.readlink(entry / "ns/mnt") == namespace:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found
