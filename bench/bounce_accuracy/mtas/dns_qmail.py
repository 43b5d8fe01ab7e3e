"""qmail's notices of a null MX and of a DNS server that never answers for the recipient's
domain (round 53): round 42's notqmail (``qmail.built``, the same commit), a home of its own
(:data:`HOME`, compiled in: a build under :data:`SRC`), run as the sending MTA in a mount
namespace where a private ``/etc/passwd`` and ``/etc/group`` add qmail's users
(``qmail.accounts``) and a private ``/etc/resolv.conf`` names the harness's DNS server
(``dnsserver.py``, on :data:`DNS_ADDRESS`, an address of this module's own). Its answers
(:data:`TABLE`): ``akee.test`` publishes a null MX (``MX 0 .``, RFC 7505), ``bilimbi.test``
gets no answer at all. Only ``sender.test`` (the notices) is routed (``control/smtproutes``:
the capture server); the cases' domains go by DNS. Mail is handed to qmail's ``sendmail``.
qmail sends no delay warnings; ``control/queuelifetime`` is a minute and the module flushes the
queue after it (``qmail.flushing``), as round 42's module does.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

from . import qmail
from .cases import DNS_QMAIL_CASES, collect, load, submit_locally
from .destination import Destination
from .dnsserver import Name, Table, serving
from .host import ENV, Namespace, alongside, stop
from .rows import Row

MTA = "dns_qmail"
ROOT = Path("/tmp/mta-dns-qmail")
SRC = ROOT / "src"
HOME = ROOT / "home"  # conf-qmail: compiled into every program of this build
RUN = ROOT / "run"
LOCAL = "carambola.test"
DNS_ADDRESS = "127.0.0.153"  # this module's DNS server (others use .41 to .57, .143)
CONTROL = {
    "me": f"mx.{LOCAL}",
    "locals": LOCAL,
    "queuelifetime": "60",
    "timeoutremote": "10",
    "timeoutconnect": "5",
}
TIMEOUT = 180.0
TABLE = Table(
    {
        "akee.test": Name((("MX", "0 ."),)),  # a null MX (RFC 7505)
        "bilimbi.test": Name(silent=True),  # no answer at all
    }
)


def _configure(namespace: Namespace, destination: Destination) -> None:
    control = qmail.installed(namespace, SRC, HOME, CONTROL)
    (control / "smtproutes").write_text(
        f"sender.test:{destination.host}:{destination.capture_port}\n"
    )


def generate(out: Path, destination: Destination) -> list[Row]:
    ROOT.mkdir(parents=True, exist_ok=True)
    ROOT.chmod(0o755)
    qmail.built(SRC, HOME)
    cases = load(MTA, DNS_QMAIL_CASES)
    mounts = qmail.mounts(RUN, HOME, DNS_ADDRESS)
    log = RUN / "qmail.log"
    with serving(TABLE, DNS_ADDRESS), Namespace(MTA, mounts, grace=5.0) as namespace:
        _configure(namespace, destination)
        env = {"PATH": f"{HOME / 'bin'}:{ENV['PATH']}"}
        start = namespace.inside(str(HOME / "bin/qmail-start"), "./Maildir/", "cat")
        with log.open("wb") as output:
            daemon = subprocess.Popen(
                start, env=env, start_new_session=True, cwd=HOME,
                stdin=subprocess.DEVNULL, stdout=output, stderr=output,
            )  # fmt: skip
        try:
            time.sleep(1)  # qmail-send reads its queue and control files
            sendmail = namespace.inside(str(HOME / "bin/sendmail"))
            for number, case in enumerate(cases, start=1):
                submit_locally(sendmail, case, number, lf=True, env=ENV)
            with alongside(lambda done: qmail.flushing(namespace, done, HOME)):
                return collect(destination, cases, out, MTA, qmail.VERSION, TIMEOUT)
        finally:
            stop(daemon)
            shutil.copy(log, out.parent / f"{MTA}.log")
