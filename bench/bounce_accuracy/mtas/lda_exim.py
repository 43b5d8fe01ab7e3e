"""Exim's notices of local delivery agents that fail (round 39): Debian's Exim, unpacked and run
as round 21's (``exim.configure``, ``exim.run``) under ``/tmp/mta-lda/exim-mta``, with the LDAs'
unpacked ``usr`` laid over the system's and a full disk mounted in its namespace
(``lda.mounts``).

It is the final destination of ``juniper.test``: a redirect router reads the local part's
command from its alias file (``lda.furnish``) and hands it to ``address_pipe``, the pipe
transport of Debian's own configuration (``return_fail_output``), run as Exim's user. Exim's
pipe takes exit statuses 73 and 75 as temporary (its default ``temp_errors``). Dovecot runs
beside it for ``dovecot-lda``'s user lookups. The cases are ``lda_exim`` in
``lda_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import dovecot, exim, lda
from .cases import LDA_CASES, load
from .destination import Destination
from .exim import Route
from .rows import Row

MTA = "lda_exim"
BASE = lda.ROOT / "exim"
ROOT = lda.ROOT / "exim-mta"
PORT = 7027  # 2527 + the helper's test port offset (4500)
DOVECOT_PORT = 7032
LOCAL = "juniper.test"

ROUTERS = """\
local_aliases:
  driver = redirect
  domains = +local_domains
  data = ${{lookup{{$local_part}}lsearch{{{aliases}}}}}
  pipe_transport = address_pipe
  allow_fail
  allow_defer

"""

# Debian's exim4.conf.template's address_pipe, run as Exim's user (given -C, Exim keeps no
# other: the LDAs' files are that user's)
TRANSPORTS = """\
address_pipe:
  driver = pipe
  return_fail_output
  user = Debian-exim

"""


def _configure(destination: Destination) -> Path:
    commands = lda.furnish(BASE, DOVECOT_PORT, exim.USER_ID)
    routes = [Route("capture", "sender.test", destination.capture_port)]
    aliases = ROOT / "aliases"
    config = exim.configure(ROOT, LOCAL, PORT, routes, ROUTERS.format(aliases=aliases), TRANSPORTS)
    aliases.write_text("".join(f'{name}: "|{command}"\n' for name, command in commands.items()))
    return config


def generate(out: Path, destination: Destination) -> list[Row]:
    version = f"{exim.unpack(ROOT)}; {lda.unpack()}"
    built = load(MTA, LDA_CASES)
    config = _configure(destination)
    with dovecot.running(BASE / "dovecot", BASE / "dovecot/etc/dovecot.conf", DOVECOT_PORT):
        return exim.run(ROOT, PORT, config, destination, built, out, MTA, version, lda.mounts(BASE))
