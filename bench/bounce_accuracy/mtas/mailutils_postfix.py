"""Postfix's notices of GNU Mailutils' delivery agents failing, run for real (round 62): an
instance of the system's Postfix configured as round 21's (``postfix.configure``) under
``/tmp/mta-r62-mailutils/postfix-mta``, started in a mount namespace of its own where
Mailutils' unpacked ``usr`` and its ``/etc`` (``mailutils.conf``, the users) are laid
(``mailutils.mounts``).

``aspen.test`` goes to a ``pipe`` service of its ``master.cf`` that runs ``mda --script=<its users'
Sieve scripts> -f ${sender} ${user}`` as ``nobody``, one recipient at a time (Mailutils' manual's
way of making ``mda`` Postfix's delivery agent); ``poplar.test`` over LMTP to a Mailutils
``lmtpd``, ``larch.test`` to a second one whose mailboxes over quota are refused for now,
``elder.test`` to a port where nothing listens (lmtpd down), and ``sender.test`` (the notices,
Mailutils' Sieve rejections) to the capture server. Sieve's mail is submitted to this instance's
listener. The cases are ``mailutils_postfix`` in ``mailutils_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import mailutils, postfix
from .cases import MAILUTILS_CASES, Case, load
from .destination import Destination
from .packages import installed_version
from .rows import Row

MTA = "mailutils_postfix"
ROOT = mailutils.ROOT / "postfix-mta"  # the instance
BASE = mailutils.ROOT / "postfix"  # mda's spool, homes, quota database and /etc
PORT = 18800  # 2600 + the helper's test port offset (16200); the lmtpds on 18801, 18802
LOCAL = "hornbeam.test"  # the instance's own domain (nothing is sent to it)
MDA, FIRST, SECOND, DOWN = "aspen.test", "poplar.test", "larch.test", "elder.test"
TIMEOUT = 150.0

SERVICES = (
    "lmtp      unix  -       -       n       -       -       lmtp\n"
    "mailutils unix  -       n       n       -       -       pipe\n"
    "  flags=R user=nobody argv={language}/usr/sbin/mda {script} -f ${{sender}} ${{user}}\n"
)


def generate(out: Path, destination: Destination) -> list[Row]:
    run = mailutils.Run(MTA, ROOT, BASE, PORT)
    return deliver(out, destination, load(MTA, MAILUTILS_CASES), run)


def deliver(
    out: Path, destination: Destination, built: list[Case], run: mailutils.Run
) -> list[Row]:
    """``built`` through the instance of ``run`` (round 75: in its language)."""
    version = run.version(installed_version("postfix"))
    first, second = run.lmtpd_ports
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        MDA: "mailutils:",
        FIRST: f"lmtp:inet:127.0.0.1:{first}",
        SECOND: f"lmtp:inet:127.0.0.1:{second}",
        DOWN: f"lmtp:inet:127.0.0.1:{destination.refused_port}",
    }
    language = "".join(f"{word} " for word in mailutils.language(run.lang))
    services = SERVICES.format(language=language, script=mailutils.script(run.base))
    master = postfix.LISTENER.format(port=run.port) + postfix.SERVICES + services
    postfix.configure(run.instance, LOCAL, master, routes, {"postmaster": "root"})
    with (run.instance / "etc/main.cf").open("a") as main:
        main.write("mailutils_destination_recipient_limit = 1\n")
    etc = mailutils.furnish(run.base, run.port, Path("/etc/passwd"), Path("/etc/group"))
    log = f"{run.mta}-{run.lang}.log" if run.lang else None
    with mailutils.lmtpds(run, run.port):
        return postfix.run(run.instance, run.port, destination, built, out, run.mta,
                           version=version, timeout=TIMEOUT, log=log,
                           mounts=mailutils.mounts(etc))  # fmt: skip
