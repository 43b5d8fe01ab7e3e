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

import shutil
import time
from pathlib import Path

from .cases import load, relayed, script_replies, submit_locally
from .destination import Destination
from .host import Overlay, isolated
from .packages import extract
from .rows import Row

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


def write_run(run: Path, aliases: dict[str, str], conf: str) -> None:
    """A fresh ``run`` folder: the ``/etc`` layer (``etc``, its overlay's ``etc-work``) whose
    ``dma/dma.conf`` is the text ``conf``, a spool any user may write, and ``aliases``."""
    if run.exists():
        shutil.rmtree(run)
    for folder in ("etc/dma", "etc-work", "spool"):
        (run / folder).mkdir(parents=True)
    (run / "spool").chmod(0o1777)  # dma writes its spool as the user it drops to
    (run / "aliases").write_text("".join(f"{name}: {to}\n" for name, to in aliases.items()))
    (run / "etc/dma/dma.conf").write_text(conf)


def _configure(destination: Destination) -> None:
    conf = CONF.format(host=destination.host, port=destination.port, local=LOCAL, run=RUN)
    write_run(RUN, ALIASES, conf)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["dma"]
    built = load(MTA)
    script_replies(destination, built)
    _configure(destination)
    # dma's settings are laid over /etc for each run; it returns once it has tried.
    command = isolated([str(DMA), "-D"], [Overlay("/etc", upper=RUN / "etc")])
    rows: list[Row] = []
    for number, case in enumerate(built, start=1):
        submit_locally(command, case, number)
        deadline = time.monotonic() + TIMEOUT
        rows += relayed(destination, [case], out, MTA, version, deadline)
    return rows
