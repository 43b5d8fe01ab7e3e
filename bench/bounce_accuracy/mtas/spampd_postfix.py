"""spampd, SpamAssassin in an SMTP proxy, run for real in front of a receiving Postfix (round
79), and the notices the sending MTA writes of what came of it: this module's Postfix (a second
instance of the system's, from :data:`CLIENT`), ``spampd_exim`` and ``spampd_sendmail`` the
others. Round 67 (``proxies_postfix``) ran clamsmtpd and proxsmtpd the same way.

spampd 2.53 (Debian 12's package, with SpamAssassin 4.0 and the Perl libraries it needs,
``packages.extract`` into ``/tmp/r79-spampd/pkg``, never installed) never refuses a message for
its score: it only tags it (spampd(8): "Add configurable option for rejecting mail outright
based on spam score" is on its to-do list) and passes it on, and its only reply of its own,
"450 Temporary failure processing message", comes with ``--dose`` when SpamAssassin fails,
which a plugin cannot make (SpamAssassin's plugin handler catches every error of a plugin,
spampd's own time-out among them). So what is made is what is real:

- the GTUBE test string, tagged by spampd (``X-Spam-Flag: YES``), refused by the receiving
  Postfix's ``header_checks`` with a bare ``REJECT`` (Postfix's own words; the way spampd's
  tags are acted on) — ``fir-r79.test``;
- spampd whose relay host (the receiving server behind it) is down: it closes the sending MTA's
  connection before any greeting (``SpamPD::Client`` fails, the request's eval dies) —
  ``gorse-r79.test``.

spampd runs in a mount namespace of its own where ``/usr/share`` and ``/etc`` are seen through
overlays holding the package's files and SpamAssassin's site settings of ours (its shipped
``.pre`` files and a ``local.cf`` with Bayes off; local tests only, ``--local-only``), and
``/var/cache`` through a writable one (its home folder is ``/var/cache/spampd``: a home given
on its command line is tainted under ``perl -T``). It logs to a syslog it does not find here.
Mail that passes goes to the receiving instance (:data:`RECEIVING_PORT`), which discards it.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import GREYLIST_MILTER_CASES, load
from .destination import Destination
from .host import ENV, Namespace, Overlay, listening, write_file
from .packages import extract
from .receiver import Receiver
from .rows import Row

MTA = "spampd_postfix"
ROOT = Path("/tmp/r79-spampd")
PACKAGES_ROOT = ROOT / "pkg"
RUN = ROOT / "run"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 19860  # the sending Postfix (round 79's ports)
RECEIVING_PORT = 19863  # the receiving Postfix's smtpd, where spampd passes mail on
RELAY_DOWN_PORT = 19869  # nothing listens here: the relay host of gorse-r79.test's spampd
CLIENT = "127.79.0.3"  # the sending MTA's address, as spampd sees it
SENDING = "elm-r79.test"
RECEIVING = "hazel-r79.test"
# recipient domain: (its spampd's port, that spampd's relay port)
PROXIES = {
    "fir-r79.test": (19865, RECEIVING_PORT),
    "gorse-r79.test": (19866, RELAY_DOWN_PORT),
}
PACKAGES = [
    "spampd", "spamassassin", "libnet-server-perl", "libmail-dkim-perl", "libnet-dns-perl",
    "libnetaddr-ip-perl", "libmailtools-perl", "libdigest-hmac-perl", "libnet-ip-perl",
    "libmail-authenticationresults-perl",
]  # fmt: skip
# SpamAssassin compiles its rules when spampd starts
STARTUP = 300.0

SA_LOCAL = """\
use_bayes 0
use_auto_whitelist 0
bayes_auto_learn 0
"""

RECV_MAIN = """
relay_domains = {domains}
local_transport = discard:
header_checks = regexp:{recv}/header_checks
"""
# header_checks(5): a bare REJECT, no text of ours ("5.7.1 message content rejected")
HEADER_CHECKS = "/^X-Spam-Flag: YES/ REJECT\n"


def prepare() -> dict[str, str]:
    """Fresh folders, the packages unpacked, SpamAssassin's site settings and the receiving
    instance's written; each package's version."""
    for leftover in (RUN, RECV):
        shutil.rmtree(leftover, ignore_errors=True)
    ROOT.mkdir(parents=True, exist_ok=True)
    ROOT.chmod(0o755)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    site = RUN / "etc" / "spamassassin"
    site.mkdir(parents=True)
    for pre in (PACKAGES_ROOT / "etc" / "spamassassin").glob("*.pre"):
        shutil.copy(pre, site / pre.name)
    write_file(site / "local.cf", SA_LOCAL)
    home = RUN / "var-cache" / "spampd"
    home.mkdir(parents=True)
    shutil.chown(home, "nobody", "nogroup")
    (RUN / "var-cache-work").mkdir()
    master = f"127.0.0.1:{RECEIVING_PORT} inet n - n - - smtpd\n" + postfix.SERVICES
    routes = dict.fromkeys(PROXIES, "discard:")
    postfix.configure(RECV, RECEIVING, master, routes, {"postmaster": "root"})
    write_file(RECV / "header_checks", HEADER_CHECKS)
    with (RECV / "etc" / "main.cf").open("a") as main:
        main.write(RECV_MAIN.format(domains=", ".join(PROXIES), recv=RECV))
    return versions


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the port of the spampd it goes to."""
    return {domain: port for domain, (port, _) in PROXIES.items()}


def _spampd(port: int, relay: int) -> list[str]:
    pkg = PACKAGES_ROOT
    return [
        "perl", "-T", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36", f"{pkg}/usr/sbin/spampd",
        "--nodetach", "--host=127.0.0.1", f"--port={port}", "--relayhost=127.0.0.1",
        f"--relayport={relay}", "--user=nobody", "--group=nogroup", "--local-only",
        "--logsock=inet", f"--pid={RUN / f'spampd-{port}.pid'}", "--children=2",
    ]  # fmt: skip


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[str]:
    """The receiving instance and the spampd instances, in their namespace, while open; their
    versions. The instance's log and spampd's output are copied beside ``out`` on leaving."""
    versions = prepare()
    mounts = [
        Overlay("/usr/share", lower=PACKAGES_ROOT / "usr" / "share"),
        Overlay("/etc", lower=RUN / "etc"),
        Overlay("/var/cache", upper=RUN / "var-cache"),
    ]
    with ExitStack() as stack:
        stack.callback(_keep_output, out, mta)
        etc = str(RECV / "etc")
        subprocess.run(["postfix", "-c", etc, "start"], check=True, env=ENV, capture_output=True)
        stack.callback(shutil.copy, RECV / "maillog", out.parent / f"{mta}-receiving.log")
        stack.callback(subprocess.run, ["postfix", "-c", etc, "stop"], check=False, env=ENV,
                       capture_output=True)  # fmt: skip
        space = stack.enter_context(Namespace("spampd", mounts, grace=10.0))
        for domain, (port, relay) in PROXIES.items():
            stack.enter_context(
                listening(space.inside(*_spampd(port, relay)), port, f"spampd for {domain}",
                          RUN / f"spampd-{port}.out", env=ENV, timeout=STARTUP)
            )  # fmt: skip
        yield version(versions)


def _keep_output(out: Path, mta: str) -> None:
    """spampd's output copied beside ``out``."""
    for log in sorted(RUN.glob("*.out")):
        shutil.copy(log, out.parent / f"{mta}-{log.stem}.log")


def version(versions: dict[str, str]) -> str:
    """spampd's and SpamAssassin's versions, for the rows."""
    return f"spampd {versions['spampd']}; spamassassin {versions['spamassassin']}"


RECEIVER = Receiver(GREYLIST_MILTER_CASES, routes_to, "proxy",
                    lambda s: receiving(s.out, s.mta), clients=CLIENT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, GREYLIST_MILTER_CASES)
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENT)
    with receiving(out, MTA) as behind:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=behind)
