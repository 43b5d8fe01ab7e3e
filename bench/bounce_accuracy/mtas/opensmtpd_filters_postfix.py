"""OpenSMTPD as the RECEIVING server with Debian's filter programs (round 69): round 65's
OpenSMTPD 6.8 (``opensmtpd_receiving_postfix``: Debian 12's package unpacked, never installed,
one daemon ``smtpd -d`` in a mount and UTS namespace of its own whose ``/etc/resolv.conf``
names the harness's DNS server) with two filters it did not have there, run by it as
``proc-exec`` filters from Debian 12's packages unpacked beside it:

* ``opensmtpd-filter-rspamd`` (0.1.7) against a private rspamd 3.4 (Debian's, unpacked, its
  normal worker on :data:`RSPAMD_PORT`, no Redis: no module of it that is used needs one). The
  filter sends the message to rspamd at the commit phase and turns its action into a reply:
  ``reject`` "550 <rspamd's SMTP message, or 'message rejected'>", ``soft reject`` "451 <its
  message, or 'try again later'>", rspamd unreachable "421 server internal error"; ``add
  header`` and ``rewrite subject`` deliver the mail (no notice, not made). Listener
  ``rspamd``: GTUBE (rspamd's own check), a multimap symbol of score 20 on a recipient domain
  (over the package's reject threshold, 15: its ``reject`` action by score), a multimap symbol
  with a ``force_actions`` soft reject on another (round 55's, at every try). Listener
  ``rspamd_down``: the same filter pointed at a port where nothing listens.
* ``opensmtpd-filter-senderscore`` (0.1.1): it asks DNS for
  ``<reversed client address>.score.senderscore.com``; the harness's DNS server answers
  ``127.0.4.10`` (score 10) for each sending MTA's address, so ``-blockBelow 50`` disconnects
  with "550 your IP reputation is too low for this MX", at connect (listener ``score``) or at
  RCPT (``-blockPhase rcpt-to``, listener ``score_rcpt``).

And OpenSMTPD's own temporary expansion failure (listener ``plain``, no filter): mail to
:data:`FORWARD_ONLY` matches a ``forward-only`` action (smtpd.conf(5): "Only accept the
message if the recipient results in a remote address after the processing of aliases or
forward file"); the virtual table gives the local user :data:`MAILUSER`, whose home has no
``.forward``, which OpenSMTPD's expansion treats as a temporary failure with its stock "424
4.2.4 Mailing list expansion problem" at RCPT, at every try (added after round 69's rule).

The sending MTA (this module: a second instance of the system's Postfix;
``opensmtpd_filters_exim`` and ``_sendmail`` the others, in front of :data:`RECEIVER`) sends
from a loopback address of its own (:data:`CLIENTS`) and writes the notices. Mail that passes
is handed to ``mda "/bin/true"``. Round 65's helpers are used as they are (read only).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import milters_postfix, opensmtpd, postfix
from .cases import OPENSMTPD_FILTERS_CASES, Case, load
from .destination import Destination
from .dnsserver import Name, Table
from .host import stop
from .packages import extract
from .receiver import Receiver
from .rows import Row

MTA = "opensmtpd_filters_postfix"
CASES = OPENSMTPD_FILTERS_CASES
ROOT = Path("/tmp/r69-opensmtpd")
RUN = ROOT / "receiving"
RSPAMD_ROOT = ROOT / "rspamd-pkg"
SEND = ROOT / "postfix"
# 2525 + the helper's test port offset (15950) and on: the sending MTAs, the listeners, rspamd
PORT = 18475
PORTS = {"rspamd": 18478, "rspamd_down": 18479, "score": 18480, "score_rcpt": 18481,
         "plain": 18486}  # fmt: skip
RSPAMD_PORT = 18482
CONTROLLER_PORT = 18483
PROXY_PORT = 18484  # rspamd's proxy worker, bound here only to keep off the default port
DEAD_PORT = 18485  # nothing listens: the rspamd_down listener's filter asks here
DNS_ADDRESS = "127.69.0.53"
CLIENTS = {
    "opensmtpd_filters_postfix": "127.69.0.2",
    "opensmtpd_filters_exim": "127.69.0.3",
    "opensmtpd_filters_sendmail": "127.69.0.4",
}
GTUBE = "birch-r69.test"  # rspamd listener: GTUBE cases
SCORED = "larch-r69.test"  # rspamd listener: a symbol of score 20, rspamd's reject by score
SOFT = "holly-r69.test"  # rspamd listener: force_actions soft reject
DOWN = "cedar-r69.test"  # rspamd_down listener
SCORE = "fir-r69.test"  # senderscore at connect
SCORE_RCPT = "pine-r69.test"  # senderscore at RCPT
FORWARD_ONLY = "ash-r69.test"  # plain listener: a forward-only action, no ~/.forward
LISTENERS = {"rspamd": (GTUBE, SCORED, SOFT), "rspamd_down": (DOWN,), "score": (SCORE,),
             "score_rcpt": (SCORE_RCPT,), "plain": (FORWARD_ONLY,)}  # fmt: skip
MAILUSER = ("r69mail", 64969)
SENDER_SCORE = 10  # the score the DNS server gives every sending MTA's address
BLOCK_BELOW = 50
PACKAGES = [*opensmtpd.PACKAGES, "opensmtpd-filter-rspamd", "opensmtpd-filter-senderscore"]
RSPAMD_PACKAGES = [
    "rspamd", "libhyperscan5", "libicu72", "libluajit-5.1-2", "libluajit-5.1-common",
    "libsodium23", "libunwind8",
]  # fmt: skip
RSPAMD_READY = 600.0  # seconds: rspamd takes ~80 s to start on a loaded machine

RSPAMD_LOCAL = {
    "worker-normal.inc": 'bind_socket = "127.0.0.1:{port}";\n',
    "worker-proxy.inc": 'bind_socket = "127.0.0.1:{proxy}";\n',
    "worker-controller.inc": 'bind_socket = "127.0.0.1:{controller}";\n',
    "logging.inc": 'type = "file";\nfilename = "{root}/rspamd.log";\nlevel = "info";\n',
    "options.inc": 'dns {{ nameserver = ["127.0.0.1:{dead}"]; timeout = 1s; retransmits = 1; }}\n',
    # a symbol of score 20 (over the reject threshold, 15) for mail to SCORED, a symbol of
    # none with round 55's force_actions soft reject for mail to SOFT
    "multimap.conf": (
        'R69_SCORED {{\n  type = "rcpt";\n  filter = "email:domain";\n'
        '  map = "{root}/rspamd-scored.map";\n  score = 20.0;\n}}\n'
        'R69_SOFT {{\n  type = "rcpt";\n  filter = "email:domain";\n'
        '  map = "{root}/rspamd-soft.map";\n  score = 0.0;\n}}\n'
    ),
    "force_actions.conf": (
        'rules {{\n  R69_SOFT_REJECT {{\n    action = "soft reject";\n'
        '    expression = "R69_SOFT";\n    message = "Try again later";\n  }}\n}}\n'
    ),
}

CONF = """\
queue ttl 3m
bounce warn-interval 1m
table vusers file:{run}/virtual
filter rspamd proc-exec "/usr/libexec/opensmtpd/filter-rspamd -url http://127.0.0.1:{rspamd}"
filter rspamd_down proc-exec "/usr/libexec/opensmtpd/filter-rspamd -url http://127.0.0.1:{dead}"
filter score proc-exec "/usr/libexec/opensmtpd/filter-senderscore -blockBelow {below}"
filter score_rcpt proc-exec \
"/usr/libexec/opensmtpd/filter-senderscore -blockBelow {below} -blockPhase rcpt-to"
listen on 127.0.0.1 port {p_rspamd} hostname mx.{gtube} filter rspamd
listen on 127.0.0.1 port {p_down} hostname mx.{gtube} filter rspamd_down
listen on 127.0.0.1 port {p_score} hostname mx.{gtube} filter score
listen on 127.0.0.1 port {p_score_rcpt} hostname mx.{gtube} filter score_rcpt
listen on 127.0.0.1 port {p_plain} hostname mx.{gtube}
action "deliver" mda "/bin/true" virtual <vusers>
action "forward-only" forward-only virtual <vusers>
action "capture" relay host smtp://{host}:{capture}
match from any for domain "{forward_only}" action "forward-only"
match from any for domain {{ {domains} }} action "deliver"
match from local for domain "sender.test" action "capture"
"""


def _domains() -> list[str]:
    return [d for domains in LISTENERS.values() for d in domains]


def _table() -> Table:
    """``sender.test`` and each sending MTA's SenderScore name, score :data:`SENDER_SCORE`."""
    names = {"sender.test": Name((("A", "127.0.0.1"),))}
    for address in CLIENTS.values():
        reversed_ = ".".join(reversed(address.split(".")))
        names[f"{reversed_}.score.senderscore.com"] = Name((("A", f"127.0.4.{SENDER_SCORE}"),))
    return Table(names)


def _configure(destination: Destination) -> None:
    """A fresh :data:`RUN` with its identities, the virtual table and ``smtpd.conf``."""
    conf = CONF.format(
        run=RUN, rspamd=RSPAMD_PORT, dead=DEAD_PORT, below=BLOCK_BELOW,
        p_rspamd=PORTS["rspamd"], p_down=PORTS["rspamd_down"], p_score=PORTS["score"],
        p_score_rcpt=PORTS["score_rcpt"], p_plain=PORTS["plain"], forward_only=FORWARD_ONLY,
        gtube=GTUBE, host=destination.host,
        capture=destination.capture_port, domains=", ".join(f'"{d}"' for d in _domains()),
    )  # fmt: skip
    opensmtpd.write_run(RUN, {"postmaster": "root"}, conf, mailuser=MAILUSER)
    user, _ = MAILUSER
    (RUN / "virtual").write_text("".join(f"@{d} {user}\n" for d in _domains()))


def _configure_rspamd() -> Path:
    """rspamd's own settings over a copy of the package's ``/etc/rspamd``; its folder."""
    folder = ROOT / "rspamd"
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(RSPAMD_ROOT / "etc" / "rspamd", folder / "rspamd")
    for name in ("rspamd-db", "rspamd-run"):
        (folder / name).mkdir()
        shutil.chown(folder / name, "nobody", "nogroup")
    (folder / "rspamd-scored.map").write_text(f"{SCORED}\n")
    (folder / "rspamd-soft.map").write_text(f"{SOFT}\n")
    for name, text in RSPAMD_LOCAL.items():
        settings = text.format(port=RSPAMD_PORT, proxy=PROXY_PORT, controller=CONTROLLER_PORT,
                               root=folder, dead=DEAD_PORT)  # fmt: skip
        (folder / "rspamd" / "local.d" / name).write_text(settings)
    return folder


@contextmanager
def _rspamd(log_copy: Path) -> Iterator[None]:
    """rspamd, once its normal worker answers ``/ping`` (a deadline of :data:`RSPAMD_READY`
    seconds); stopped on leaving, its log copied to ``log_copy``."""
    folder = _configure_rspamd()
    command, env = milters_postfix.rspamd_command(RSPAMD_ROOT, folder)
    with (folder / "rspamd.out").open("wb") as output:
        daemon = subprocess.Popen(command, env=env, start_new_session=True, stdout=output,
                                  stderr=output)  # fmt: skip
    try:
        milters_postfix.wait_pong(RSPAMD_PORT, daemon, RSPAMD_READY)
        yield
    finally:
        stop(daemon)
        if (folder / "rspamd.log").exists():
            shutil.copy(folder / "rspamd.log", log_copy)


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the listener's port it goes to."""
    return {domain: PORTS[name] for name, domains in LISTENERS.items() for domain in domains}


@contextmanager
def receiving(destination: Destination, out: Path, mta: str) -> Iterator[str]:
    """rspamd, the DNS server and the receiving OpenSMTPD with its filters while open; their
    versions. The logs are copied beside ``out`` on leaving."""
    versions = extract(PACKAGES, ROOT)
    versions.update(extract(RSPAMD_PACKAGES, RSPAMD_ROOT))
    _configure(destination)
    with (
        _rspamd(out.parent / f"{mta}-rspamd.log"),
        opensmtpd.receiving(
            ROOT, RUN, f"mx.{GTUBE}", ports=list(PORTS.values()), table=_table(),
            dns_address=DNS_ADDRESS, log_copy=out.parent / f"{mta}-receiving.log",
        ),
    ):  # fmt: skip
        yield (
            f"opensmtpd-{versions['opensmtpd']} (receiving); "
            f"filter-rspamd {versions['opensmtpd-filter-rspamd']}; "
            f"rspamd {versions['rspamd']}; "
            f"filter-senderscore {versions['opensmtpd-filter-senderscore']}"
        )


RECEIVER = Receiver(CASES, routes_to, "opensmtpd",
                    lambda s: receiving(s.destination, s.out, s.mta), clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built: list[Case] = load(MTA, CASES)
    postfix.configure_sending(SEND, "quince-r69.test", PORT, destination, routes_to(),
                              client=CLIENTS[MTA])  # fmt: skip
    with receiving(destination, out, MTA) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
