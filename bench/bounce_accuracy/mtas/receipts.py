"""Delivery receipts (round 37): the success notices an MTA sends when the sender asked for
them (RFC 3461's ``NOTIFY=SUCCESS``), automatic mail a bounce address receives that is no
failure. The system's Postfix 3.7.11, in an instance of its own under ``/tmp/mta-receipts``,
set up as ``vacation.py``'s (``sieve.serve``: Dovecot 2.3.19.1 over LMTP for
``larch-mail.test``'s mailboxes),
reports a delivery into a mailbox, a delivery to a file of its own aliases, an alias's
expansion and a relay to a server that does not speak DSN (the scripted server, for
``walnut.test``). The cases are ``receipts`` in ``auto_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sieve
from .cases import load
from .destination import Destination
from .rows import Row

MTA = "receipts"
ROOT = Path("/tmp/mta-receipts")
PORT = 6441  # 2541 + the helper's test port offset (3900)
DOVECOT_PORT = 6443
LOCAL = "yew.test"  # Postfix's own domain: its aliases
DOMAIN = "larch-mail.test"  # the mailboxes Dovecot keeps
USERS = ("hanna.berg", "ivo.petrov")
ALIASES = {
    "minutes": str(ROOT / "archive" / "minutes"),  # a file of its own
    "board": "lena.falk@walnut.test, otto.brun@walnut.test",
}


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA)
    archive = ROOT / "archive"
    archive.mkdir(parents=True, exist_ok=True)
    archive.chmod(0o1777)
    return sieve.serve(ROOT, PORT, DOVECOT_PORT, LOCAL, DOMAIN, USERS, {}, destination, built,
                       out, MTA, ALIASES)  # fmt: skip
