"""Content-filter milters behind a RECEIVING Sendmail (round 70): round 21b's unpacked Sendmail
8.17 (``sendmail.unpacked``, Debian's package, never installed) runs seven daemons on 127.0.0.1
(:data:`DAEMONS`), each from a ``.cf`` built by m4 from a ``.mc`` of ours (:data:`MC`) with one
``INPUT_MAIL_FILTER``, in one mount and UTS namespace whose private ``/etc/resolv.conf`` names
the harness's DNS server (on :data:`DNS_ADDRESS`) and whose ``/usr/bin`` is seen through an
overlay holding the package's ``spamc`` (spamass-milter runs ``/usr/bin/spamc``). Round 55
(``milters_postfix``) ran the same filters behind a receiving Postfix; its package list, its
clamd signature and configuration, clamav-milter's configuration and ``RejectMsg``, spamd's
site settings and rspamd's settings are imported from there as they are (its module and case
file are not changed). The filters run from Debian 12's packages unpacked under
:data:`PACKAGES_ROOT`:

* ``clamav`` (``larch-r70.test``): clamav-milter with clamd and round 55's EICAR signature,
  ``OnInfected Reject`` and no ``RejectMsg`` (Sendmail's own words for a milter's reject);
  ``clamav_msg`` (``linden-r70.test``): the same with round 55's ``RejectMsg``;
  ``clamd_down`` (``mulberry-r70.test``): clamav-milter with ``OnFail Defer`` and its clamd
  socket where nothing listens;
* ``spamass`` (``myrtle-r70.test``): spamass-milter ``-r 5`` with spamd (GTUBE scores 1000);
* ``rspamd`` (``olive-r70.test``, ``pine-r70.test``): rspamd 3.4's proxy worker in milter mode
  scanning by itself (round 55's settings): GTUBE is its reject, and round 55's
  ``force_actions`` rule soft-rejects mail to ``pine-r70.test`` ("Try again later");
* ``down_tempfail`` (``nutmeg-r70.test``) and ``down_reject`` (``sorrel-r70.test``): the filter
  at a port where nothing listens, with ``F=T`` (Sendmail's own temporary answers: srvrsmtp.c's
  "Milter: initialization failed, temp failing commands") and ``F=R`` (a 554 greeting and
  "Command rejected": "initialization failed, rejecting commands").

The sending MTA (this module: a second instance of the system's Postfix;
``sendmail_milters_exim`` and ``sendmail_milters_sendmail`` the others, in front of
:data:`RECEIVER`) sends from a loopback address of its own (:data:`CLIENTS`) and writes the
notices. Not made: ``FEATURE(greet_pause)``'s refusal, which only a client that talks before
the greeting meets (none of the three sending MTAs does).
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import milters_postfix, postfix, sendmail
from .cases import SENDMAIL_MILTERS_CASES, Case, load
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Mount, Namespace, Overlay, listening, stop, wait_listening, write_file
from .packages import extract
from .receiver import Receiver, prepared
from .rows import Row

MTA = "sendmail_milters_postfix"
CASES = SENDMAIL_MILTERS_CASES
ROOT = Path("/tmp/r70-sendmail-milters")
PACKAGES_ROOT = ROOT / "pkg"
RUN = ROOT / "receiving"
SEND = ROOT / "postfix"  # the sending Postfix instance
# 2525 + the helper's test port offset (16050) and on: the sending MTAs, the receiving
# daemons, the filters
PORT = 18575
# daemon: (its port, its recipient domains)
DAEMONS = {
    "clamav": (18578, ("larch-r70.test",)),
    "clamav_msg": (18579, ("linden-r70.test",)),
    "clamd_down": (18580, ("mulberry-r70.test",)),
    "spamass": (18581, ("myrtle-r70.test",)),
    "rspamd": (18582, ("olive-r70.test", "pine-r70.test")),
    "down_tempfail": (18583, ("nutmeg-r70.test",)),
    "down_reject": (18584, ("sorrel-r70.test",)),
}
SOFT = "pine-r70.test"  # rspamd's force_actions soft reject (round 55's rule)
CLAMD_PORT = 18585
CLAMD_DOWN_PORT = 18586  # nothing listens: the clamd of clamd_down's clamav-milter is down
SPAMD_PORT = 18587
RSPAMD_CONTROLLER_PORT = 18588
DOWN_PORT = 18589  # nothing listens: the milter of down_tempfail and down_reject is down
# daemon: its milter's port
MILTERS = {
    "clamav": 18590,
    "clamav_msg": 18591,
    "clamd_down": 18592,
    "spamass": 18593,
    "rspamd": 18594,
    "down_tempfail": DOWN_PORT,
    "down_reject": DOWN_PORT,
}
# Sendmail's flag for a milter it cannot reach (F=T: temporary failure, F=R: reject)
FLAGS = {"down_reject": "R"}
# Sendmail's milter timeouts: a scan on a loaded machine is no timeout
TIMEOUTS = "C:30s;S:2m;R:5m;E:10m"
STARTUP = 600.0  # seconds a filter may take to be ready (rspamd ~80 s on a loaded machine)
DNS_ADDRESS = "127.70.0.53"
CLIENTS = {
    "sendmail_milters_postfix": "127.70.0.2",
    "sendmail_milters_exim": "127.70.0.3",
    "sendmail_milters_sendmail": "127.70.0.4",
}
TABLE = Table({"sender.test": Name((("A", "127.0.0.1"),))})

MC = """\
divert(-1)
divert(0)dnl
OSTYPE(`linux')dnl
define(`confDOMAIN_NAME', `mx.{local}')dnl
define(`QUEUE_DIR', `{run}/mqueue')dnl
define(`ALIAS_FILE', `{run}/aliases')dnl
define(`STATUS_FILE', `{run}/statistics')dnl
define(`confPID_FILE', `{run}/sendmail.pid')dnl
define(`confCW_FILE', `{run}/local-host-names')dnl
define(`confSERVICE_SWITCH_FILE', `{run}/service.switch')dnl
define(`confDONT_BLAME_SENDMAIL', `TrustStickyBit')dnl
define(`confDONT_PROBE_INTERFACES', `True')dnl
define(`confRUN_AS_USER', `root')dnl
define(`confDEF_USER_ID', `65534:65534')dnl
define(`confTO_IDENT', `0')dnl
define(`confMILTER_LOG_LEVEL', `6')dnl
FEATURE(`no_default_msa')dnl
FEATURE(`nocanonify')dnl
FEATURE(`use_cw_file')dnl
FEATURE(`accept_unresolvable_domains')dnl
INPUT_MAIL_FILTER(`r70filter', `S=inet:{milter}@127.0.0.1, F={flag}, T={timeouts}')dnl
DAEMON_OPTIONS(`Port={port}, Addr=127.0.0.1, Name=MTA')dnl
MAILER(`local')dnl
MAILER(`smtp')dnl
"""


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving daemon's port it goes to."""
    return {domain: port for port, domains in DAEMONS.values() for domain in domains}


def _recipients() -> set[str]:
    """Every recipient's local part in the case file (aliased to /dev/null by each daemon)."""
    return {
        address.split("@")[0]
        for mta in CLIENTS
        for case in load(mta, CASES)
        for address in case.recipients
    }


def _configure(name: str, users: set[str], space: Namespace) -> Path:
    """Daemon ``name``'s fresh folder under :data:`RUN`: its queue, aliases and
    ``sendmail.cf``; the ``.cf``'s path. The aliases are built inside ``space``."""
    run = RUN / name
    queue = run / "mqueue"
    queue.mkdir(parents=True)
    queue.chmod(0o700)
    port, domains = DAEMONS[name]
    (run / "local-host-names").write_text("".join(f"{d}\n" for d in domains))
    (run / "service.switch").write_text("hosts\tdns\naliases\tfiles\n")
    aliases = "".join(f"{user}: /dev/null\n" for user in sorted(users))
    (run / "aliases").write_text(aliases + "postmaster: root\n")
    mc = MC.format(local=domains[0], run=run, port=port, milter=MILTERS[name],
                   flag=FLAGS.get(name, "T"), timeouts=TIMEOUTS)  # fmt: skip
    (run / "sendmail.mc").write_text(mc)
    cf_dir = sendmail.CF_DIR
    m4 = subprocess.run(
        [str(sendmail.ROOT / "usr/bin/m4"), f"-D_CF_DIR_={cf_dir}/", str(cf_dir / "m4/cf.m4"),
         str(run / "sendmail.mc")],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    cf = run / "sendmail.cf"
    cf.write_text(m4.stdout)
    space.run(str(sendmail.BIN / "sendmail"), "-C", str(cf), "-bi")
    return cf


def prepare() -> dict[str, str]:
    """A fresh :data:`RUN`, the filters' packages unpacked (round 55's list) and their settings
    written (round 55's); each package's version, and sendmail-bin's."""
    versions = extract(milters_postfix.PACKAGES, PACKAGES_ROOT)
    versions["sendmail-bin"] = sendmail.unpacked()
    if RUN.exists():
        shutil.rmtree(RUN)
    for folder in ("clamav-db", "tmp", "site", "bin", "rspamd-db", "rspamd-run"):
        (RUN / folder).mkdir(parents=True)
    (RUN / "tmp").chmod(0o1777)
    for folder in ("rspamd-db", "rspamd-run"):
        shutil.chown(RUN / folder, "nobody", "nogroup")
    write_file(RUN / "clamav-db" / "local.ndb", milters_postfix.SIGNATURES)
    write_file(RUN / "clamd.conf", milters_postfix.CLAMD_CONF.format(root=RUN, port=CLAMD_PORT))
    for name, clamd, reject in (
        ("clamav", CLAMD_PORT, ""),
        ("clamav_msg", CLAMD_PORT, f'RejectMsg "{milters_postfix.CUSTOM_REJECT}"\n'),
        ("clamd_down", CLAMD_DOWN_PORT, ""),
    ):
        port = MILTERS[name]
        text = milters_postfix.MILTER_CONF.format(port=port, clamd=clamd, root=RUN) + reject
        write_file(RUN / f"clamav-milter-{port}.conf", text)
    for pre in (PACKAGES_ROOT / "etc" / "spamassassin").glob("*.pre"):
        shutil.copy(pre, RUN / "site" / pre.name)
    write_file(RUN / "site" / "local.cf", milters_postfix.SPAMD_SITE)
    shutil.copy(PACKAGES_ROOT / "usr/bin/spamc", RUN / "bin" / "spamc")
    shutil.copytree(PACKAGES_ROOT / "etc" / "rspamd", RUN / "rspamd")
    write_file(RUN / "rspamd-soft-domains.map", f"{SOFT}\n")
    for name, text in milters_postfix.RSPAMD_LOCAL.items():
        settings = text.format(port=MILTERS["rspamd"], controller=RSPAMD_CONTROLLER_PORT,
                               root=RUN)  # fmt: skip
        write_file(RUN / "rspamd" / "local.d" / name, settings)
    return versions


def _filters(space: Namespace, stack: ExitStack) -> None:
    """clamd, the clamav-milters, spamd and spamass-milter in ``space``, each stopped on
    leaving ``stack`` (round 55's commands, this round's ports)."""
    pkg = PACKAGES_ROOT
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
           "LD_LIBRARY_PATH": f"{pkg}/usr/lib/x86_64-linux-gnu"}  # fmt: skip
    clamd = [f"{pkg}/usr/sbin/clamd", "-c", str(RUN / "clamd.conf")]
    stack.enter_context(
        listening(space.inside(*clamd), CLAMD_PORT, "clamd", RUN / "clamd.out", env=env,
                  timeout=STARTUP)
    )  # fmt: skip
    for name in ("clamav", "clamav_msg", "clamd_down"):
        port = MILTERS[name]
        command = [f"{pkg}/usr/sbin/clamav-milter", "-c", str(RUN / f"clamav-milter-{port}.conf")]
        stack.enter_context(
            listening(space.inside(*command), port, f"clamav-milter ({name})",
                      RUN / f"clamav-milter-{port}.out", env=env, timeout=STARTUP)
        )  # fmt: skip
    spamd = [
        "perl", "-T", f"-I{pkg}/usr/share/perl5", f"-I{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36",
        f"{pkg}/usr/sbin/spamd", "-L", "-s", "stderr", "-i", "127.0.0.1", "-p", str(SPAMD_PORT),
        f"--configpath={pkg}/usr/share/spamassassin", f"--siteconfigpath={RUN / 'site'}",
        "-u", "nobody", "-x", f"--pidfile={RUN / 'spamd.pid'}",
    ]  # fmt: skip
    stack.enter_context(
        listening(space.inside(*spamd), SPAMD_PORT, "spamd", RUN / "spamd.out", env=env,
                  timeout=STARTUP)
    )  # fmt: skip
    port = MILTERS["spamass"]
    command = [f"{pkg}/usr/sbin/spamass-milter", "-p", f"inet:{port}@127.0.0.1", "-r", "5",
               "--", "-d", "127.0.0.1", "-p", str(SPAMD_PORT), "-x"]  # fmt: skip
    stack.enter_context(
        listening(space.inside(*command), port, "spamass-milter", RUN / "spamass-milter.out",
                  env=env, timeout=STARTUP)
    )  # fmt: skip


@contextmanager
def _rspamd() -> Iterator[None]:
    """rspamd (round 55's command, its paths as variables), once its controller answers
    ``/ping`` and its proxy worker listens (a deadline of :data:`STARTUP` seconds); stopped on
    leaving."""
    command, env = milters_postfix.rspamd_command(PACKAGES_ROOT, RUN)
    with (RUN / "rspamd.out").open("wb") as output:
        daemon = subprocess.Popen(command, env=env, start_new_session=True, stdout=output,
                                  stderr=output)  # fmt: skip
    try:
        milters_postfix.wait_pong(RSPAMD_CONTROLLER_PORT, daemon, STARTUP)
        wait_listening(MILTERS["rspamd"], "rspamd's proxy worker", STARTUP, daemon=daemon)
        yield
    finally:
        stop(daemon)


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """The DNS server, the filters and the receiving Sendmail daemons in their namespace,
    while open; their output and logs are copied beside ``out`` on leaving."""
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    log = RUN / "daemons.log"
    first = DAEMONS["clamav"][1][0]
    mounts: list[Mount] = [Bind(resolv, "/etc/resolv.conf"), Overlay("/usr/bin", lower=RUN / "bin")]
    try:
        with ExitStack() as stack:
            stack.enter_context(serving(TABLE, DNS_ADDRESS))
            space = stack.enter_context(Namespace(mta, mounts, hostname=f"mx.{first}", grace=10.0))
            _filters(space, stack)
            stack.enter_context(_rspamd())
            users = _recipients()
            output = stack.enter_context(log.open("wb"))
            daemons = []
            for name in DAEMONS:
                cf = _configure(name, users, space)
                command = space.inside(str(sendmail.BIN / "sendmail"), "-C", str(cf), "-bD")
                daemons.append(
                    subprocess.Popen(command, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                     start_new_session=True, stdin=subprocess.DEVNULL,
                                     stdout=output, stderr=output)
                )  # fmt: skip
            for daemon in daemons:
                stack.callback(stop, daemon)
            for port, _ in DAEMONS.values():
                wait_listening(port, "sendmail (receiving)")
            yield
    finally:
        for source in (
            log,
            RUN / "rspamd.log",
            *RUN.glob("clamav-milter-*.log"),
            RUN / "clamd.log",
            RUN / "spamd.out",
            RUN / "spamass-milter.out",
        ):
            if source.exists():
                shutil.copy(source, out.parent / f"{mta}-{source.name}")


def version(versions: dict[str, str]) -> str:
    """The receiving side's software, for the rows."""
    return (
        f"sendmail-{versions['sendmail-bin']} (receiving); clamav-milter "
        f"{versions['clamav-milter']}; spamass-milter {versions['spamass-milter']}; spamd "
        f"{versions['spamd']}; rspamd {versions['rspamd']}"
    )


RECEIVER = Receiver(CASES, routes_to, "smmilter", prepared(prepare, receiving, version),
                    clients=CLIENTS)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built: list[Case] = load(MTA, CASES)
    postfix.configure_sending(SEND, "quince-r70.test", PORT, destination, routes_to(),
                              client=CLIENTS[MTA])  # fmt: skip
    versions = prepare()
    with receiving(out, MTA):
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version(versions))
