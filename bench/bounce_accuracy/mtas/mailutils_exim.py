"""Exim's notices of GNU Mailutils' delivery agents failing, run for real (round 62): Debian's
Exim, unpacked and run as round 21's (``exim.configure``, ``exim.run``) under
``/tmp/mta-r62-mailutils/exim-mta``, with Mailutils' unpacked ``usr`` and its ``/etc``
(``mailutils.conf``; Exim's passwd and group with the users added) laid in its namespace
(``mailutils.mounts``).

An ``accept`` router sends the local parts of ``acacia.test`` its table lists (:data:`TABLE`:
Mailutils' users and one it has no account for) to a ``pipe`` transport that runs ``mda
--script=<...> $local_part_data`` as Exim's user (``return_fail_output``: the program's words in
the notice; 75 and 73 are temporary, Exim's default ``temp_errors``). The sender reaches ``mda`` in
the ``From`` line the pipe puts first (its default ``message_prefix``): Exim 4.96 refuses a tainted
value, such as ``$sender_address`` or ``$local_part``, as a command's argument, and the table's
``$local_part_data`` is not tainted; manual routes send ``hickory.test`` over LMTP (``protocol =
lmtp``) to a Mailutils ``lmtpd``, ``magnolia.test`` to a second one whose mailboxes over quota are
refused for now, ``mulberry.test`` to a port where nothing listens, and ``sender.test`` to the
capture server. The cases are ``mailutils_exim`` in ``mailutils_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, mailutils
from .cases import MAILUTILS_CASES, Case, load
from .destination import Destination
from .exim import Route
from .rows import Row

MTA = "mailutils_exim"
ROOT = mailutils.ROOT / "exim-mta"
BASE = mailutils.ROOT / "exim"
PORT = 18805  # 2605 + the helper's test port offset (16200); the lmtpds on 18806, 18807
LOCAL = "sycamore.test"
MDA, FIRST, SECOND, DOWN = "acacia.test", "hickory.test", "magnolia.test", "mulberry.test"
LMTP = ("protocol = lmtp",)
# the local parts Exim hands to mda (vera.stone has no account: mda's own "no such user")
TABLE = (*mailutils.USERS, "vera.stone")

ROUTERS = """\
mailutils_mda:
  driver = accept
  domains = {domain}
  local_parts = lsearch;{table}
  transport = mailutils_mda

"""

TRANSPORTS = """\
mailutils_mda:
  driver = pipe
  command = {language}/usr/sbin/mda {script} $local_part_data
  return_fail_output
  user = Debian-exim

"""


def generate(out: Path, destination: Destination) -> list[Row]:
    run = mailutils.Run(MTA, ROOT, BASE, PORT)
    return deliver(out, destination, load(MTA, MAILUTILS_CASES), run)


def deliver(
    out: Path, destination: Destination, built: list[Case], run: mailutils.Run
) -> list[Row]:
    """``built`` through the Exim of ``run`` (round 75: in its language)."""
    version = run.version(exim.unpack(run.instance))
    first, second = run.lmtpd_ports
    routes = [
        Route("capture", "sender.test", destination.capture_port),
        Route("lmtpd", FIRST, first, LMTP),
        Route("lmtpd_tempfail", SECOND, second, LMTP),
        Route("down", DOWN, destination.refused_port, (*LMTP, "connect_timeout = 5s")),
    ]
    table = run.instance / "mda-users"
    routers = ROUTERS.format(domain=MDA, table=table)
    language = "".join(f"{word} " for word in mailutils.language(run.lang))
    transports = TRANSPORTS.format(language=language, script=mailutils.script(run.base))
    config = exim.configure(run.instance, LOCAL, run.port, routes, routers, transports)
    table.write_text("".join(f"{user}: {user}\n" for user in TABLE))
    # the namespace's /etc is Mailutils' overlay: it holds Exim's passwd and group too
    etc = mailutils.furnish(run.base, run.port, run.instance / "passwd", run.instance / "group",
                            exim.USER_ID)  # fmt: skip
    with mailutils.lmtpds(run, run.port):
        return exim.run(run.instance, run.port, config, destination, built, out, run.mta,
                        version, mailutils.mounts(etc))  # fmt: skip
