"""Sendmail's notices of local delivery agents that fail (round 39): Debian's sendmail-bin,
unpacked and run as round 21b's (``sendmail.configure``, ``sendmail.run``) with a folder of its
own, ``/tmp/mta-lda/sendmail-run``, and the LDAs' unpacked ``usr`` laid over the system's and a
full disk mounted in its namespace (``lda.mounts``).

It is the final destination of ``sorrel.test``, whose local parts are alias commands
(``lda.furnish``): Sendmail hands each to its ``prog`` mailer (``sh -c``; no smrsh in this
``.mc``), run as ``nobody`` (``confDEF_USER_ID``), and maps the exit status to its own words.
Dovecot runs beside it for ``dovecot-lda``'s user lookups. The cases are ``lda_sendmail`` in
``lda_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import dovecot, lda, sendmail
from .cases import LDA_CASES, load
from .destination import Destination
from .rows import Row

MTA = "lda_sendmail"
BASE = lda.ROOT / "sendmail"
RUN = lda.ROOT / "sendmail-run"
PORT = 7029  # 2529 + the helper's test port offset (4500)
DOVECOT_PORT = 7033
LOCAL = "sorrel.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    version = f"{sendmail.unpacked()}; {lda.unpack()}"
    built = load(MTA, LDA_CASES)
    commands = lda.furnish(BASE, DOVECOT_PORT)
    aliases = {name: f'"|{command}"' for name, command in commands.items()}
    aliases["postmaster"] = "root"
    sendmail.configure(destination, RUN, LOCAL, PORT, aliases, sendmail.BESIDE)
    with dovecot.running(BASE / "dovecot", BASE / "dovecot/etc/dovecot.conf", DOVECOT_PORT):
        return sendmail.run(
            destination, built, out, MTA, version, RUN, LOCAL, PORT, lda.mounts(BASE)
        )
