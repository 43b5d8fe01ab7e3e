"""Sendmail's notices of GNU Mailutils' delivery agents failing, run for real (round 62):
Debian's sendmail-bin, unpacked and run as round 21b's (``sendmail.configure``,
``sendmail.run``) with a folder of its own, ``/tmp/mta-r62-mailutils/sendmail-run``, and
Mailutils' unpacked ``usr`` and its ``/etc`` laid in its namespace (``mailutils.mounts``).

Its local domain ``cypress.test`` is delivered by ``mda``: the ``local`` mailer of the generated
``sendmail.cf`` is replaced by one that runs ``mda --script=<...> -f $g $u`` as ``nobody``
(Mailutils' manual's way of making ``mda`` Sendmail's local mailer; no ``w`` flag, so Sendmail
leaves the user's lookup to ``mda``). Its mailer table sends ``hawthorn.test`` to a Mailutils
``lmtpd``, ``chestnut.test`` to a second one whose mailboxes over quota are refused for now and
``dogwood.test`` to a port where nothing listens, each through a mailer that speaks LMTP (``F=z``)
over TCP; ``sender.test`` goes to the capture server. The cases are ``mailutils_sendmail`` in
``mailutils_cases.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path

from . import mailutils, sendmail
from .cases import MAILUTILS_CASES, Case, load
from .destination import Destination
from .rows import Row

MTA = "mailutils_sendmail"
RUN = mailutils.ROOT / "sendmail-run"
BASE = mailutils.ROOT / "sendmail"
PORT = 18810  # 2610 + the helper's test port offset (16200); the lmtpds on 18811, 18812
LOCAL = "cypress.test"
FIRST, SECOND, DOWN = "hawthorn.test", "chestnut.test", "dogwood.test"

LOCAL_MAILER = (
    "Mlocal,\t\tP={program}, F=lsDFMAq5:/|@, S=EnvFromL/HdrFromL, R=EnvToL/HdrToL,\n"
    "\t\tU=65534:8, T=DNS/RFC822/X-Unix,\n"
    "\t\tA={argv} {script} -f $g $u\n"
)


def generate(out: Path, destination: Destination) -> list[Row]:
    run = mailutils.Run(MTA, RUN, BASE, PORT)
    return deliver(out, destination, load(MTA, MAILUTILS_CASES), run)


def deliver(
    out: Path, destination: Destination, built: list[Case], run: mailutils.Run
) -> list[Row]:
    """``built`` through the Sendmail of ``run`` (round 75: in its language)."""
    version = run.version(sendmail.unpacked())
    first, second = run.lmtpd_ports
    lmtp_routes = {
        FIRST: (destination.host, first),
        SECOND: (destination.host, second),
        DOWN: (destination.host, destination.refused_port),
    }
    aliases = {"postmaster": "root"}
    sendmail.configure(destination, run.instance, LOCAL, run.port, aliases, sendmail.BESIDE,
                       lmtp=lmtp_routes)  # fmt: skip
    cf = run.instance / "sendmail.cf"
    # in a language: env sets the locale, then runs mda (round 75)
    prefix = mailutils.language(run.lang)
    program = prefix[0] if prefix else "/usr/sbin/mda"
    argv = " ".join(["env", *prefix[1:], "/usr/sbin/mda"]) if prefix else "mda"
    mailer = LOCAL_MAILER.format(program=program, argv=argv, script=mailutils.script(run.base))
    text, replaced = re.subn(r"^Mlocal,.*?\n(?=\S)", mailer, cf.read_text(),
                             count=1, flags=re.M | re.S)  # fmt: skip
    if not replaced:
        raise RuntimeError(f"no local mailer in {cf}")
    cf.write_text(text)
    etc = mailutils.furnish(run.base, run.port, Path("/etc/passwd"), Path("/etc/group"))
    with mailutils.lmtpds(run, run.port):
        return sendmail.run(destination, built, out, run.mta, version, run.instance, LOCAL,
                            run.port, mailutils.mounts(etc))  # fmt: skip
