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
import subprocess
from pathlib import Path

from . import postfix
from .cases import FILTER_CASES, collect, load, submit
from .destination import Destination
from .dovecot import Dovecot
from .lmtp import ScriptedLMTP
from .packages import installed_version
from .rows import Row

MTA = "filters_postfix"
ROOT = Path("/tmp/mta-filters/postfix")
PORT = 8525  # 2525 + the helper's test port offset (6000)
LOCAL = "spruce.test"
REMOTE = "poplar.test"
DOVECOT = "oak.test"
CYRUS = "hollow.test"
TIMEOUT = 240.0

LMTP_SERVICE = "lmtp      unix  -       -       n       -       -       lmtp\n"


def _configure(destination: Destination, dovecot: Dovecot, lmtp: ScriptedLMTP) -> None:
    if ROOT.exists():
        shutil.rmtree(ROOT)
    etc = ROOT / "etc"
    for folder in (etc, ROOT / "spool", ROOT / "data"):
        folder.mkdir(parents=True)
    shutil.chown(ROOT / "data", "postfix", "postfix")
    host = destination.host
    (etc / "transport").write_text(
        f"sender.test smtp:[{host}]:{destination.capture_port}\n"
        f"{REMOTE} smtp:[{host}]:{destination.port}\n"
        f"{DOVECOT} lmtp:inet:{dovecot.host}:{dovecot.port}\n"
        f"{CYRUS} lmtp:inet:{lmtp.host}:{lmtp.port}\n"
    )
    (etc / "aliases").write_text("postmaster root\n")
    # the second listener of round 21's master.cf (a size limit) is left out
    master = postfix.MASTER_CF.format(port=PORT, small_port=PORT + 1).splitlines(keepends=True)
    (etc / "master.cf").write_text(master[0] + "".join(master[2:]) + LMTP_SERVICE)
    (etc / "main.cf").write_text(
        postfix.MAIN_CF.format(
            root=ROOT, local=LOCAL, warn=postfix.WARN_AFTER, lifetime=postfix.LIFETIME
        )
    )


def _postfix(*args: str) -> None:
    subprocess.run(
        ["postfix", "-c", str(ROOT / "etc"), *args], check=True, env=postfix._env()
    )  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    version = installed_version("postfix")
    built = load(MTA, FILTER_CASES)
    for case in built:
        for address, reply in case.scripts.items():
            destination.script(address, reply)
    with Dovecot() as dovecot, ScriptedLMTP(destination, f"mx.{CYRUS}") as lmtp:
        _configure(destination, dovecot, lmtp)
        _postfix("start")
        try:
            submit(destination.host, PORT, built)
            return collect(destination, built, out, MTA, version, TIMEOUT)
        finally:
            _postfix("stop")
            shutil.copy(ROOT / "maillog", out.parent / f"{MTA}.log")
            shutil.copy(dovecot.log, out.parent / f"{MTA}-dovecot.log")
