"""dma's notices: Debian's dma (the DragonFly Mail Agent), unpacked under ``/tmp/mta-dma``
(never installed).

dma has no SMTP listener: an application hands it a message on the command line
(``dma -D -f SENDER RECIPIENT...``, in the foreground), and it sends every remote message, and
every notice it returns to the sender, to one smarthost: here the scripted remote server, so
the notices are read from what that server took for each case's sender. Its settings file is
compiled in (``/etc/dma/dma.conf``): each run sees it through an overlay of ``/etc`` in a
mount namespace of its own (the system's ``/etc`` is never changed). Its own name is
``hawthorn.test`` (aliases only); its spool is ``/tmp/mta-dma/run/spool``.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

from .cases import Case, load, message
from .destination import Destination
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "dma"
PACKAGES = ["dma"]
ROOT = Path("/tmp/mta-dma")
RUN = ROOT / "run"
LOCAL = "hawthorn.test"
ALIASES = {"gisela.horn": "gisela.h@yew.test", "postmaster": "root"}
TIMEOUT = 30.0  # seconds to wait for a case's notice once dma has returned
DMA = ROOT / "usr/sbin/dma"

CONF = """\
SMARTHOST {host}
PORT {port}
MAILNAME {local}
ALIASES {run}/aliases
SPOOLDIR {run}/spool
"""

# Run as the namespace's root: /etc with dma's settings laid over it, then dma.
ENTER = (
    'mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1/etc,workdir=$1/work" /etc && '
    'shift && exec "$@"'
)


def _configure(destination: Destination) -> None:
    if RUN.exists():
        shutil.rmtree(RUN)
    for folder in ("etc/dma", "work", "spool"):
        (RUN / folder).mkdir(parents=True)
    (RUN / "spool").chmod(0o1777)  # dma writes its spool as the user it drops to
    (RUN / "aliases").write_text("".join(f"{name}: {to}\n" for name, to in ALIASES.items()))
    (RUN / "etc/dma/dma.conf").write_text(
        CONF.format(host=destination.host, port=destination.port, local=LOCAL, run=RUN)
    )


def _send(case: Case, number: int) -> None:
    command = ["unshare", "--mount", "sh", "-c", ENTER, "sh", str(RUN),
               str(DMA), "-D", "-f", case.sender, *case.recipients]  # fmt: skip
    done = subprocess.run(command, input=message(case, number), capture_output=True, timeout=60)
    if done.returncode != 0:
        logger.warning("%s: dma refused it (%s): %s", case.name, done.returncode, done.stderr)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["dma"]
    built = load(MTA)
    for case in built:
        for address, reply in case.scripts.items():
            destination.script(address, reply)
    _configure(destination)
    rows: list[Row] = []
    for number, case in enumerate(built, start=1):
        _send(case, number)
        got = _notices(destination, case.sender)
        if len(got) != 1:
            logger.warning("%s: %s notices came, not one; left out", case.name, len(got))
            continue
        (out / f"{case.name}.eml").write_bytes(got[0])
        rows += [
            Row(file=f"{MTA}/{case.name}.eml", recipient=address, status=label.status,
                delivery=label.delivery, note=label.note, mta=MTA, mta_version=version)
            for address, label in case.failed.items()
        ]  # fmt: skip
    return rows


def _notices(destination: Destination, sender: str) -> list[bytes]:
    """What the scripted server took for ``sender`` (dma's notices go to the smarthost), with
    the Return-Path a final delivery adds (the capture server's shape)."""
    deadline = time.monotonic() + TIMEOUT
    while not destination.delivered(sender) and time.monotonic() < deadline:
        time.sleep(0.2)
    return [
        f"Return-Path: <{'' if m.mail_from in ('<>', 'None') else m.mail_from}>\r\n".encode()
        + m.raw
        for m in destination.delivered(sender)
    ]
