"""Postfix's notices of local delivery agents that fail (round 39): an instance of the system's
Postfix configured as round 21's (``postfix.configure``: its ``master.cf`` and ``main.cf``),
under ``/tmp/mta-lda/postfix-mta``, started in a mount namespace of its own (``host.Namespace``)
where the LDAs' unpacked ``usr`` is laid over the system's and a full disk is mounted
(``lda.mounts``).

It is the final destination of ``hemlock.test``, whose local parts are alias commands
(``lda.furnish``): Postfix's local delivery agent runs each as ``nobody`` (``default_privs``)
and writes its exit status and output in the notice. Dovecot runs beside it for
``dovecot-lda``'s user lookups. The cases are ``lda_postfix`` in ``lda_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import dovecot, lda, postfix
from .cases import LDA_CASES, load
from .destination import Destination
from .packages import installed_version
from .rows import Row

MTA = "lda_postfix"
BASE = lda.ROOT / "postfix"  # the LDAs' mailboxes, filters, Dovecot root and full disk
ROOT = lda.ROOT / "postfix-mta"  # the instance
PORT = 7025  # 2525 + the helper's test port offset (4500)
DOVECOT_PORT = 7031
LOCAL = "hemlock.test"


def _configure(destination: Destination) -> None:
    commands = lda.furnish(BASE, DOVECOT_PORT)
    # local(8) reads a quoted command with its arguments as one destination
    aliases = {name: f'"|{command}"' for name, command in commands.items()}
    routes = {"sender.test": f"smtp:[{destination.host}]:{destination.capture_port}"}
    master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES
    postfix.configure(ROOT, LOCAL, master, routes, {**aliases, "postmaster": "root"})


def generate(out: Path, destination: Destination) -> list[Row]:
    version = f"{installed_version('postfix')}; {lda.unpack()}"
    built = load(MTA, LDA_CASES)
    _configure(destination)
    config = BASE / "dovecot/etc/dovecot.conf"
    with dovecot.running(BASE / "dovecot", config, DOVECOT_PORT):
        return postfix.run(
            ROOT, PORT, destination, built, out, MTA, version=version, mounts=lda.mounts(BASE)
        )
