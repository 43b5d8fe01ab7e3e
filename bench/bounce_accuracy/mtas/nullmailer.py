"""nullmailer's notices: Debian's nullmailer, unpacked under ``/tmp/mta-nullmailer`` (never
installed).

nullmailer only relays: an application hands it a message on the command line (its
``sendmail``), ``nullmailer-send`` sends every message to the smart hosts of its ``remotes``
file (here one, the scripted remote server), and a message refused for good, or still queued
after ``queuelifetime``, comes back to its sender as a notice made by ``nullmailer-dsn``,
which goes to the same smart host: so the notices are read from what that server took for
each case's sender, as for dma. Its settings (``/etc/nullmailer``) and queue
(``/var/spool/nullmailer``) are compiled in: it runs in a mount namespace of its own, held open
by a ``sleep``, with overlays over ``/usr`` (the unpacked package, read only), ``/etc`` and
``/var`` (writable layers under ``/tmp/mta-nullmailer/run``); the system's files are never
changed. ``nullmailer-send`` runs there as ``mail``, as Debian's init script starts it. Its
own name is ``hornbeam.test``; queue runs every 10 s at most, a queue lifetime of 90 s.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path

from .cases import Case, load, message
from .destination import Destination
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "nullmailer"
PACKAGES = ["nullmailer"]
ROOT = Path("/tmp/mta-nullmailer")
RUN = ROOT / "run"
LOCAL = "hornbeam.test"
SETTINGS = {
    "me": f"mx.{LOCAL}",
    "defaultdomain": LOCAL,
    "pausetime": "5",
    "maxpause": "10",
    "queuelifetime": "90",
    "sendtimeout": "30",
}
TIMEOUT = 180.0  # seconds to wait for a case's notice (the lifetime, 90 s, and queue runs)

# Run as the namespace's root: the overlays, then the command.
ENTER = (
    'mount -t overlay overlay -o "lowerdir=$1/usr:/usr" /usr && '
    'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$2/etc,workdir=$2/etc-work" /etc && '
    'mount -t overlay overlay -o "lowerdir=/var,upperdir=$2/var,workdir=$2/var-work" /var && '
    'shift 2 && exec "$@"'
)


def _configure(destination: Destination) -> None:
    if RUN.exists():
        shutil.rmtree(RUN)
    spool = RUN / "var/spool/nullmailer"
    for folder in ("etc/nullmailer", "etc-work", "var-work"):
        (RUN / folder).mkdir(parents=True)
    for folder in ("queue", "tmp", "failed"):
        (spool / folder).mkdir(parents=True)
    os.mkfifo(spool / "trigger", 0o622)
    etc = RUN / "etc/nullmailer"
    for name, value in SETTINGS.items():
        (etc / name).write_text(value + "\n")
    (etc / "remotes").write_text(f"{destination.host} smtp --port={destination.port}\n")
    # Debian's nullmailer takes its name from /etc/mailname, not from ``me``.
    (RUN / "etc/mailname").write_text(f"mx.{LOCAL}\n")
    mail = pwd.getpwnam("mail")
    for path in (spool, *spool.rglob("*"), etc / "remotes"):
        os.chown(path, mail.pw_uid, mail.pw_gid)


def _inside(holder: subprocess.Popen[bytes], *command: str) -> list[str]:
    return ["nsenter", "-t", str(holder.pid), "-m", *command]


def _send(holder: subprocess.Popen[bytes], case: Case, number: int) -> None:
    raw = message(case, number).replace(b"\r\n", b"\n")  # a local program hands over LF lines
    done = subprocess.run(
        _inside(holder, "/usr/sbin/sendmail", "-f", case.sender, *case.recipients),
        input=raw, capture_output=True, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        logger.warning("%s: sendmail refused it (%s): %s", case.name, done.returncode,
                       done.stderr)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["nullmailer"]
    built = load(MTA)
    for case in built:
        for address, reply in case.scripts.items():
            destination.script(address, reply)
    _configure(destination)
    command = ["unshare", "--mount", "sh", "-c", ENTER, "sh", str(ROOT), str(RUN),
               "sleep", "infinity"]  # fmt: skip
    holder = subprocess.Popen(command, start_new_session=True)
    sender = None
    try:
        _wait_entered(holder)
        with (RUN / "nullmailer-send.log").open("wb") as log:
            sender = subprocess.Popen(
                _inside(holder, "setpriv", "--reuid=mail", "--regid=mail", "--init-groups",
                        "/usr/sbin/nullmailer-send"),
                stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        for number, case in enumerate(built, start=1):
            _send(holder, case, number)
        rows: list[Row] = []
        deadline = time.monotonic() + TIMEOUT
        for case in built:
            got = _notices(destination, case.sender, deadline)
            if len(got) != 1:
                logger.warning("%s: %s notices came, not one; left out", case.name, len(got))
                continue
            missing = [a for a in case.delivered if not destination.delivered(a)]
            if missing:
                logger.warning("%s: %s not delivered as built; left out", case.name, missing)
                continue
            (out / f"{case.name}.eml").write_bytes(got[0])
            rows += [
                Row(file=f"{MTA}/{case.name}.eml", recipient=address, status=label.status,
                    delivery=label.delivery, note=label.note, mta=MTA, mta_version=version)
                for address, label in case.failed.items()
            ]  # fmt: skip
        return rows
    finally:
        if sender is not None:
            os.killpg(sender.pid, signal.SIGTERM)
            sender.wait(timeout=10)
        holder.kill()
        holder.wait()


def _wait_entered(holder: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Until the holder runs in its own namespace with the overlays laid."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{holder.pid}/cmdline").read_bytes().startswith(b"sleep"):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the namespace for nullmailer did not come up")


def _notices(destination: Destination, sender: str, deadline: float) -> list[bytes]:
    """What the scripted server took for ``sender`` (the notices go to the smart host), with
    the Return-Path a final delivery adds (the capture server's shape)."""
    while not destination.delivered(sender) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [
        f"Return-Path: <{'' if m.mail_from in ('<>', 'None') else m.mail_from}>\r\n".encode()
        + m.raw
        for m in destination.delivered(sender)
    ]
