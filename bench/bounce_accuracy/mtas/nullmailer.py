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

import os
import pwd
import shutil
import subprocess
import time
from pathlib import Path

from .cases import load, relayed, script_replies, submit_locally
from .destination import Destination
from .host import Namespace, Overlay, stop
from .packages import extract
from .rows import Row

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


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["nullmailer"]
    built = load(MTA)
    script_replies(destination, built)
    _configure(destination)
    mounts = [
        Overlay("/usr", lower=ROOT / "usr"),
        Overlay("/etc", upper=RUN / "etc"),
        Overlay("/var", upper=RUN / "var"),
    ]
    with Namespace(MTA, mounts) as namespace:
        with (RUN / "nullmailer-send.log").open("wb") as log:
            sender = subprocess.Popen(
                namespace.inside("setpriv", "--reuid=mail", "--regid=mail", "--init-groups",
                                 "/usr/sbin/nullmailer-send"),
                stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        try:
            for number, case in enumerate(built, start=1):
                submit_locally(namespace.inside("/usr/sbin/sendmail"), case, number, lf=True)
            deadline = time.monotonic() + TIMEOUT
            return relayed(destination, built, out, MTA, version, deadline)
        finally:
            stop(sender)
