"""qmail's own notice of a forwarding loop (round 81): notqmail built as round 42's
(``qmail.built``, the same commit) with a home of its own compiled in (:data:`HOME`), run in a
mount namespace of its own (``qmail.mounts``: its users added to copies of ``passwd`` and
``group``), the final destination of :data:`LOCAL`.

The alias user's ``.qmail`` files forward back round (:data:`DOT_QMAIL`): ``lena.qm`` to
``mats.qm`` and ``mats.qm`` back to ``lena.qm``; ``ola.qm`` to itself. qmail-local adds its
``Delivered-To:`` line at each delivery and, when the message comes back with it, fails it:
"This message is looping: it already has my Delivered-To line. (#5.4.6)" (qmail-local.c), in
qmail-send's own notice to the sender (``control/smtproutes`` sends ``sender.test`` to the
capture server). Nothing but local delivery is used: no port, no DNS of its own. The cases are
``forwarding_qmail`` in ``forwarding_cases.yaml``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from . import qmail
from .cases import FORWARDING_CASES, collect, load, submit_locally
from .destination import Destination
from .host import ENV, Namespace, stop
from .rows import Row

MTA = "forwarding_qmail"
ROOT = Path("/tmp/r81-qmail")
SRC = ROOT / "src"
HOME = ROOT / "home"  # conf-qmail: compiled into every program of this build
RUN = ROOT / "run"
LOCAL = "quince-r81.test"
CONTROL = {"me": f"mx.{LOCAL}", "locals": LOCAL, "rcpthosts": LOCAL, "queuelifetime": "60"}
# The alias user's .qmail files, by local part: each forwards back round.
DOT_QMAIL = {
    "lena.qm": f"&mats.qm@{LOCAL}\n",
    "mats.qm": f"&lena.qm@{LOCAL}\n",
    "ola.qm": f"&ola.qm@{LOCAL}\n",
    "postmaster": "./Maildir/\n",
}
TIMEOUT = 60.0  # seconds to wait for the last notice (local deliveries only)


def _configure(namespace: Namespace, destination: Destination) -> None:
    control = qmail.installed(namespace, SRC, HOME, CONTROL)
    route = f"sender.test:{destination.host}:{destination.capture_port}\n"
    (control / "smtproutes").write_text(route)
    qmail.alias_files(HOME, DOT_QMAIL)


def generate(out: Path, destination: Destination) -> list[Row]:
    qmail.built(SRC, HOME)
    cases = load(MTA, FORWARDING_CASES)
    log = RUN / "qmail.log"
    with Namespace(MTA, qmail.mounts(RUN, HOME), grace=5.0) as namespace:
        _configure(namespace, destination)
        env = {"PATH": f"{HOME / 'bin'}:{ENV['PATH']}"}
        start = namespace.inside(str(HOME / "bin/qmail-start"), "./Maildir/", "cat")
        with log.open("wb") as output:
            daemon = subprocess.Popen(start, env=env, start_new_session=True, cwd=HOME,
                                      stdin=subprocess.DEVNULL, stdout=output,
                                      stderr=output)  # fmt: skip
        try:
            time.sleep(1)  # qmail-send reads its queue and control files
            sendmail = namespace.inside(str(HOME / "bin/sendmail"))
            for number, case in enumerate(cases, start=1):
                submit_locally(sendmail, case, number, lf=True, env=ENV)
            return collect(destination, cases, out, MTA, qmail.VERSION, TIMEOUT)
        finally:
            stop(daemon)
