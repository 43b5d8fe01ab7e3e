"""Exim's notices: Debian's exim4-daemon-light, unpacked under ``/tmp/mta-exim`` (never
installed) and run with a configuration of its own (``-C``) as a daemon on 127.0.0.1:``PORT``
with a queue runner every few seconds.

Debian builds Exim to run as the user ``Debian-exim``, which this machine does not have (and
Exim given ``-C`` by root drops to that user, so local deliveries run as it too): Exim
runs in a mount namespace of its own (``unshare -m``) where copies of the passwd and group files
that add that user are mounted over the system's (the system's files are not changed). The
library Debian's Exim links and the system lacks (libidn12) is unpacked beside it and found
through ``LD_LIBRARY_PATH``.

It is the final destination of ``alder.test`` (mailboxes and aliases of its own), and sends
``hazel.test`` to the scripted remote server, ``elm.test`` to a port where nothing listens,
``ash.test`` to a server that never greets, ``sender.test`` (the notices) to the capture
server, and everything else by DNS (``cedar-nx.test`` has no record: NXDOMAIN).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .cases import Case, collect, load, script_replies, submit
from .destination import Destination
from .host import ENV, Bind, Mount, isolated, listening
from .packages import extract
from .receiver import Receiver, Sending
from .rows import Row

MTA = "exim"
PACKAGES = ["exim4-daemon-light", "exim4-base", "libidn12"]
ROOT = Path("/tmp/mta-exim")
PORT = 6527  # 2527 + the helper's test port offset (4000)
LOCAL = "alder.test"
USER_ID = 64999  # Debian-exim, in the namespace's passwd only
TIMEOUT = 240.0

# How every Exim of the harness runs (this module's and the receiving Exims of rounds 59 and
# 68): the unpacked binary, its spool and logs under its own folder, LD_LIBRARY_PATH kept for
# the libraries unpacked beside it (its deliveries run Exim again), a daemon on one port of
# 127.0.0.1 only, and no reverse lookup, ident query or TLS offered to a client.
DAEMON = """\
exim_path = {binary}
spool_directory = {root}/spool
log_file_path = {root}/log/%slog
keep_environment = LD_LIBRARY_PATH
daemon_smtp_ports = {port}
local_interfaces = 127.0.0.1
disable_ipv6 = true
host_lookup =
rfc1413_hosts =
tls_advertise_hosts =
"""

MAIN = """\
primary_hostname = mx.{local}
qualify_domain = {local}
domainlist local_domains = {local}
hostlist relay_from_hosts = 127.0.0.1
{daemon}
acl_smtp_rcpt = acl_check_rcpt
message_size_limit = 100K
smtp_accept_queue_per_connection = 0
delay_warning = 20s:1h
never_users = root

begin acl

acl_check_rcpt:
  accept hosts = +relay_from_hosts
  deny message = relay not permitted

"""

ROUTE = """\
{name}:
  driver = manualroute
  domains = {domain}
  transport = to_{name}
  route_list = * 127.0.0.1
  self = send

"""

TRANSPORT = """\
to_{name}:
  driver = smtp
  port = {port}
{options}
"""

# After the routes: everything else by DNS, the local domain's aliases and mailboxes.
ROUTERS = """\
dnslookup:
  driver = dnslookup
  domains = ! +local_domains
  transport = remote_smtp
  no_more

aliases:
  driver = redirect
  domains = +local_domains
  data = ${{lookup{{$local_part}}lsearch{{{root}/etc/aliases}}}}
  allow_fail
  allow_defer

quota_mailbox:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;{root}/etc/quota-mailboxes
  transport = quota_mailbox

small_mailbox:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;{root}/etc/small-mailboxes
  transport = small_mailbox

"""

TRANSPORTS = """\
remote_smtp:
  driver = smtp

quota_mailbox:
  driver = appendfile
  file = {root}/mail/$local_part_data
  user = Debian-exim
  quota = 20K
  delivery_date_add
  envelope_to_add
  return_path_add

small_mailbox:
  driver = appendfile
  file = {root}/mail/$local_part_data
  user = Debian-exim
  message_size_limit = 10K
  delivery_date_add
  envelope_to_add
  return_path_add

"""

RETRY = """\
begin retry

*  *  F,60s,5s
"""


@dataclass(frozen=True)
class Route:
    """Mail for ``domain`` sent to 127.0.0.1:``port`` by the transport ``to_<name>``, with
    ``options`` (a timeout, ``protocol = lmtp``) added to it."""

    name: str
    domain: str
    port: int
    options: tuple[str, ...] = ()


def _configure(destination: Destination) -> Path:
    routes = [
        Route("capture", "sender.test", destination.capture_port),
        Route("remote", "hazel.test", destination.port),
        Route("refused", "elm.test", destination.refused_port, ("connect_timeout = 5s",)),
        Route("silent", "ash.test", destination.silent_port,
              ("connect_timeout = 5s", "command_timeout = 5s")),
    ]  # fmt: skip
    config = configure(
        ROOT, LOCAL, PORT, routes, ROUTERS.format(root=ROOT), TRANSPORTS.format(root=ROOT)
    )
    full = mailboxes(ROOT) / "sofia.kramer"
    full.write_bytes(b"From old@sender.test Thu Jan  1 00:00:00 2026\n" + b"x" * 21_000 + b"\n")
    os.chown(full, USER_ID, USER_ID)  # appendfile wants the mailbox owned by its user
    etc = ROOT / "etc"
    (etc / "aliases").write_text("paul.weber: paul.w@hazel.test\n")
    # the value found is $local_part_data, the (untainted) mailbox file's name
    (etc / "quota-mailboxes").write_text("sofia.kramer: sofia.kramer\n")
    (etc / "small-mailboxes").write_text("rosa.klein: rosa.klein\n")
    return config


def configure(
    root: Path, local: str, port: int, routes: list[Route], routers: str, transports: str
) -> Path:
    """Fresh folders under ``root``, the copies of the passwd and group files that add Exim's
    user, and ``etc/exim.conf``: the daemon on ``port`` for ``local``, ``routes`` first, then
    ``routers`` and ``transports``."""
    for folder in ("spool", "log", "etc"):
        path = root / folder
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    for folder in ("spool", "log"):
        os.chown(root / folder, USER_ID, USER_ID)
    passwd = [*_getent("passwd"), f"Debian-exim:x:{USER_ID}:{USER_ID}::{root}:/bin/false"]
    groups = [*_getent("group"), f"Debian-exim:x:{USER_ID}:"]
    (root / "passwd").write_text("\n".join(passwd) + "\n")
    (root / "group").write_text("\n".join(groups) + "\n")
    routers = "".join(ROUTE.format(name=r.name, domain=r.domain) for r in routes) + routers
    transports = (
        "".join(
            TRANSPORT.format(
                name=r.name, port=r.port, options="".join(f"  {o}\n" for o in r.options)
            )
            for r in routes
        )
        + transports
    )
    config = root / "etc" / "exim.conf"
    main = MAIN.format(local=local, daemon=daemon_options(_binary(root), root, port))
    config.write_text(
        main + "begin routers\n\n" + routers + "begin transports\n\n" + transports + RETRY
    )
    return config


def configure_empty(
    root: Path, local: str, port: int, routes: list[Route], routers: str = ""
) -> Path:
    """``configure`` with ``routers`` before this module's own ``ROUTERS`` and ``TRANSPORTS``,
    their tables (aliases, quota and small mailboxes) left empty."""
    config = configure(
        root, local, port, routes, routers + ROUTERS.format(root=root), TRANSPORTS.format(root=root)
    )
    for name in ("aliases", "quota-mailboxes", "small-mailboxes"):
        (root / "etc" / name).write_text("")
    return config


def configure_sending(
    root: Path,
    local: str,
    port: int,
    destination: Destination,
    relays: Mapping[str, int],
    *,
    relay: str,
    captured: Mapping[str, str] | None = None,
    client: str | None = None,
) -> Path:
    """``configure_empty`` for a sending daemon under ``root`` that takes the cases on
    127.0.0.1:``port``: ``sender.test`` (the notices, route ``capture``) and the ``captured``
    domains (route name: domain) go to the capture server, each of ``relays`` (domain: port)
    to that port of 127.0.0.1 (routes ``<relay>0``, ``<relay>1``, ...). With ``client``,
    the relays' transports bind to that address (``interface``)."""
    capture = destination.capture_port
    routes = [Route("capture", "sender.test", capture)]
    routes += [Route(name, domain, capture) for name, domain in (captured or {}).items()]
    source = () if client is None else (f"interface = {client}",)
    routes += [
        Route(f"{relay}{number}", domain, to, source)
        for number, (domain, to) in enumerate(relays.items())
    ]
    return configure_empty(root, local, port, routes)


def daemon_options(binary: Path, root: Path, port: int) -> str:
    """:data:`DAEMON`'s main options for the Exim ``binary`` whose spool and logs are under
    ``root``, listening on 127.0.0.1:``port``: the lines that stand for a configuration's
    ``{daemon}`` line (so without the last newline)."""
    return DAEMON.format(binary=binary, root=root, port=port).removesuffix("\n")


def mailboxes(root: Path) -> Path:
    """A fresh ``root/mail``, the folder of the mailboxes Exim's deliveries write (as
    Exim's user), open to every user."""
    mail = root / "mail"
    if mail.exists():
        shutil.rmtree(mail)
    mail.mkdir()
    mail.chmod(0o1777)
    return mail


def _getent(database: str) -> list[str]:
    out = subprocess.run(["getent", database], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def _binary(root: Path) -> Path:
    return root / "root/usr/sbin/exim4"


def unpack(root: Path) -> str:
    """Exim's packages unpacked under ``root/root``; the version of its daemon's."""
    version = extract(PACKAGES, root / "root")["exim4-daemon-light"]
    # Run by root, Exim needs no set-uid bit; without it the loader keeps LD_LIBRARY_PATH
    # (kept by keep_environment) when Exim runs itself again for a delivery.
    _binary(root).chmod(0o755)
    return version


def run(
    root: Path,
    port: int,
    config: Path,
    destination: Destination,
    built: list[Case],
    out: Path,
    mta: str,
    version: str,
    mounts: Sequence[Mount] = (),
    timeout: float = TIMEOUT,
) -> list[Row]:
    """Run the daemon of ``root`` with ``config``, submit ``built`` on ``port`` and collect
    the notices (waiting at most ``timeout`` seconds); the daemon is stopped and its log copied
    beside ``out`` (``<mta>.log``). ``mounts`` are laid in its namespace after the passwd and
    group files."""
    env = {**ENV, "LD_LIBRARY_PATH": str(root / "root/usr/lib/x86_64-linux-gnu")}
    # Exim given -C by root drops to Debian-exim: its user is in the namespace's passwd.
    users = [Bind(root / "passwd", "/etc/passwd"), Bind(root / "group", "/etc/group")]
    # -bdf: the daemon in the foreground, so it is this process's child and stops with it.
    command = isolated([str(_binary(root)), "-C", str(config), "-bdf", "-q5s"], [*users, *mounts])
    try:
        with listening(command, port, "Exim", root / "log" / "daemon.log", env=env):
            submit(destination.host, port, built)
            return collect(destination, built, out, mta, version, timeout)
    finally:
        shutil.copy(root / "log" / "mainlog", out.parent / f"{mta}.log")


def behind(
    receiver: Receiver,
    mta: str,
    root: Path,
    local: str,
    port: int,
    out: Path,
    destination: Destination,
) -> list[Row]:
    """The notices of Exim, unpacked under ``root`` (``unpack``), as the sending MTA in front
    of ``receiver`` (``configure_sending``: final destination of ``local``, the cases taken on
    127.0.0.1:``port``, each recipient domain routed to its receiving server), the receiving
    side running while ``run`` submits ``mta``'s cases of the round and collects them."""
    built = load(mta, receiver.cases)
    version = unpack(root)
    config = configure_sending(root, local, port, destination, receiver.routes(),
                               relay=receiver.relay, captured=receiver.exim_captured(),
                               client=receiver.client(mta))  # fmt: skip
    timeout = receiver.exim_timeout or TIMEOUT
    with receiver.serving(Sending(mta, built, destination, out, port)) as serving:
        return run(root, port, config, destination, built, out, mta,
                   f"exim4-{version}; {serving}", timeout=timeout)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    version = unpack(ROOT)
    built = load(MTA)
    script_replies(destination, built)
    config = _configure(destination)
    return run(ROOT, PORT, config, destination, built, out, MTA, version)
