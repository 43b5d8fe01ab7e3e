"""Postfix's notices of what filters and mailbox servers answer (round 23): a third instance of
the system's Postfix, configured as round 21's (``postfix.py``: its ``master.cf`` and
``main.cf`` with an ``lmtp`` service added), under ``/tmp/mta-filters/postfix``.

It sends ``oak.test`` over LMTP to Dovecot run for real (``dovecot.py``), ``hollow.test`` over
LMTP to the scripted LMTP server (``lmtp.py``: Cyrus's lmtpd's words), ``poplar.test`` to the
scripted SMTP server (the words of a remote Postfix, its policy services and milters, amavisd,
rspamd, Courier), and ``sender.test`` (the notices) to the capture server. The cases are
``filters_postfix`` in ``filter_cases.yaml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import postfix
from .cases import FILTER_CASES, load, script_replies
from .destination import Destination
from .dovecot import Dovecot
from .lmtp import ScriptedLMTP
from .rows import Row

MTA = "filters_postfix"
ROOT = Path("/tmp/mta-filters/postfix")
PORT = 8525  # 2525 + the helper's test port offset (6000)
LOCAL = "spruce.test"
REMOTE = "poplar.test"
DOVECOT = "oak.test"
CYRUS = "hollow.test"

LMTP_SERVICE = "lmtp      unix  -       -       n       -       -       lmtp\n"


def _configure(destination: Destination, dovecot: Dovecot, lmtp: ScriptedLMTP) -> None:
    host = destination.host
    routes = {
        "sender.test": f"smtp:[{host}]:{destination.capture_port}",
        REMOTE: f"smtp:[{host}]:{destination.port}",
        DOVECOT: f"lmtp:inet:{dovecot.host}:{dovecot.port}",
        CYRUS: f"lmtp:inet:{lmtp.host}:{lmtp.port}",
    }
    # round 21's master.cf without its second listener (a size limit), with an lmtp client
    master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES + LMTP_SERVICE
    postfix.configure(ROOT, LOCAL, master, routes, {"postmaster": "root"})


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, FILTER_CASES)
    script_replies(destination, built)
    with Dovecot() as dovecot, ScriptedLMTP(destination, f"mx.{CYRUS}") as lmtp:
        _configure(destination, dovecot, lmtp)
        try:
            return postfix.run(ROOT, PORT, destination, built, out, MTA)
        finally:
            shutil.copy(dovecot.log, out.parent / f"{MTA}-dovecot.log")
