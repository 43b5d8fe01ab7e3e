"""Exim's notices of what filters and mailbox servers answer (round 23): Debian's Exim, unpacked
and run as round 21's (``exim.py``: a daemon with ``-C``, its user ``Debian-exim`` in a mount
namespace's copy of the passwd and group files), under ``/tmp/mta-filters/exim``.

It sends ``oak.test`` over LMTP to Dovecot run for real (``dovecot.py``), ``hollow.test`` over
LMTP to the scripted LMTP server (``lmtp.py``), ``larch.test`` to the scripted SMTP server and
``sender.test`` (the notices) to the capture server. The cases are ``filters_exim`` in
``filter_cases.yaml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import exim
from .cases import FILTER_CASES, load, script_replies
from .destination import Destination
from .dovecot import Dovecot
from .exim import Route
from .lmtp import ScriptedLMTP
from .rows import Row

MTA = "filters_exim"
ROOT = Path("/tmp/mta-filters/exim")
PORT = 8527  # 2527 + the helper's test port offset (6000)
LOCAL = "birchwood.test"


def _configure(destination: Destination, dovecot: Dovecot, lmtp: ScriptedLMTP) -> Path:
    routes = [
        Route("capture", "sender.test", destination.capture_port),
        Route("remote", "larch.test", destination.port),
        Route("dovecot", "oak.test", dovecot.port, ("protocol = lmtp",)),
        Route("cyrus", "hollow.test", lmtp.port, ("protocol = lmtp",)),
    ]
    return exim.configure(ROOT, LOCAL, PORT, routes, routers="", transports="")


def generate(out: Path, destination: Destination) -> list[Row]:
    version = exim.unpack(ROOT)
    built = load(MTA, FILTER_CASES)
    script_replies(destination, built)
    with Dovecot() as dovecot, ScriptedLMTP(destination, "mx.hollow.test") as lmtp:
        config = _configure(destination, dovecot, lmtp)
        try:
            return exim.run(ROOT, PORT, config, destination, built, out, MTA, version)
        finally:
            shutil.copy(dovecot.log, out.parent / f"{MTA}-dovecot.log")
