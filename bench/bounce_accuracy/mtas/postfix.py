"""Postfix's notices: a second instance of the system's Postfix with its own configuration and
queue under ``/tmp/mta-postfix`` (``postfix -c DIR``; the system instance is never touched).

It listens on 127.0.0.1:``PORT``, is the final destination of ``birch.test`` (local delivery,
aliases of its own), and sends ``rowan.test`` to the scripted remote server, ``elm.test`` to
a port where nothing listens, ``ash.test`` to a server that never greets, ``fir.test`` to a
second listener of its own that takes at most 10,000 bytes, ``sender.test`` (the notices) to
the capture server, and everything else by DNS (``cedar-nx.test`` has no record:
the resolver answers NXDOMAIN). Queue lifetime and delay warnings are cut to seconds.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from pathlib import Path

from .cases import Case, collect, load, script_replies, submit
from .destination import Destination
from .host import ENV, Mount, Namespace
from .packages import installed_version
from .rows import Row

MTA = "postfix"
ROOT = Path("/tmp/mta-postfix")
PORT = 6525  # 2525 + the helper's test port offset (4000)
LOCAL = "birch.test"
REMOTE = "rowan.test"
REFUSED = "elm.test"
SILENT = "ash.test"
SMALL = "fir.test"  # relayed to a second listener of this instance with a 10,000-byte limit
SMALL_PORT = PORT + 1
NXDOMAIN = "cedar-nx.test"
WARN_AFTER = "20s"
LIFETIME = "70s"
TIMEOUT = 240.0  # seconds to wait for the last notice (lifetime + retries + warnings)

LISTENER = "127.0.0.1:{port} inet n - n - - smtpd\n"
SMALL_LISTENER = "127.0.0.1:{port} inet n - n - - smtpd -o message_size_limit=10000\n"

SERVICES = """\
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
config_directory = {root}/etc
queue_directory = {root}/spool
data_directory = {root}/data
meta_directory = /etc/postfix
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.{local}
mydomain = {local}
myorigin = {local}
mydestination = {local}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
local_recipient_maps =
alias_maps = texthash:{root}/etc/aliases
alias_database =
transport_maps = texthash:{root}/etc/transport
message_size_limit = 40000
mailbox_size_limit = 50000
delay_warning_time = {warn}
maximal_queue_lifetime = {lifetime}
bounce_queue_lifetime = {lifetime}
queue_run_delay = 5s
minimal_backoff_time = 5s
maximal_backoff_time = 10s
smtp_connect_timeout = 5s
smtp_helo_timeout = 5s
biff = no
"""


def _configure(destination: Destination) -> None:
    host = destination.host
    mail = ROOT / "mail"
    quota = mail / "sofia.kramer"
    routes = {
        "sender.test": f"smtp:[{host}]:{destination.capture_port}",
        REMOTE: f"smtp:[{host}]:{destination.port}",
        REFUSED: f"smtp:[{host}]:{destination.refused_port}",
        SILENT: f"smtp:[{host}]:{destination.silent_port}",
        SMALL: f"smtp:[{host}]:{SMALL_PORT}",
    }
    aliases = {"sofia.kramer": str(quota), "paul.weber": f"paul.w@{REMOTE}", "postmaster": "root"}
    master = LISTENER.format(port=PORT) + SMALL_LISTENER.format(port=SMALL_PORT) + SERVICES
    configure(ROOT, LOCAL, master, routes, aliases)
    mail.mkdir()
    mail.chmod(0o1777)
    quota.write_bytes(b"From old@sender.test  Thu Jan  1 00:00:00 2026\n" + b"x" * 50_000 + b"\n")
    quota.chmod(0o666)


def configure(
    root: Path, local: str, master: str, routes: dict[str, str], aliases: dict[str, str]
) -> None:
    """A fresh instance under ``root``: its folders, ``master.cf``, ``main.cf`` (final
    destination of ``local``), its transport map (``routes``, domain: transport) and aliases."""
    if root.exists():
        shutil.rmtree(root)
    etc = root / "etc"
    for folder in (etc, root / "spool", root / "data"):
        folder.mkdir(parents=True)
    shutil.chown(root / "data", "postfix", "postfix")
    (etc / "transport").write_text("".join(f"{d} {to}\n" for d, to in routes.items()))
    (etc / "aliases").write_text("".join(f"{name} {to}\n" for name, to in aliases.items()))
    (etc / "master.cf").write_text(master)
    (etc / "main.cf").write_text(
        MAIN_CF.format(root=root, local=local, warn=WARN_AFTER, lifetime=LIFETIME)
    )


def configure_sending(
    root: Path,
    local: str,
    port: int,
    destination: Destination,
    relays: Mapping[str, int],
    *,
    captured: Sequence[str] = ("sender.test",),
    client: str | None = None,
) -> None:
    """A sending instance under ``root`` (``configure``) that takes the cases on
    127.0.0.1:``port``: the ``captured`` domains (the notices) go to the capture server, each
    of ``relays`` (domain: port) to that port of 127.0.0.1. With ``client``, its SMTP client
    binds to that address (``smtp_bind_address``) and its local mail is discarded."""
    capture = f"smtp:[{destination.host}]:{destination.capture_port}"
    routes = dict.fromkeys(captured, capture)
    routes |= {domain: f"smtp:[127.0.0.1]:{to}" for domain, to in relays.items()}
    configure(root, local, LISTENER.format(port=port) + SERVICES, routes, {"postmaster": "root"})
    if client is not None:
        with (root / "etc" / "main.cf").open("a") as main:
            main.write(f"smtp_bind_address = {client}\nlocal_transport = discard:\n")


def run(
    root: Path,
    port: int,
    destination: Destination,
    built: list[Case],
    out: Path,
    mta: str,
    *,
    version: str | None = None,
    behind: str | None = None,
    timeout: float = TIMEOUT,
    log: str | None = None,
    mounts: Sequence[Mount] = (),
) -> list[Row]:
    """Start the instance under ``root``, submit ``built`` on ``port`` and collect the
    notices (rows of ``version``, Postfix's own unless given, waiting at most ``timeout``;
    with ``behind``, the software of the receiving side it sends to, ``postfix-<Postfix's>;
    <behind>``); the instance is stopped and its log copied beside ``out`` (``log``,
    ``<mta>.log`` unless given). With ``mounts``, Postfix runs in a namespace of its own where
    they are laid."""
    version = version or installed_version("postfix")
    if behind is not None:
        version = f"postfix-{version}; {behind}"
    with ExitStack() as stack:
        if mounts:
            space = stack.enter_context(Namespace(mta, mounts, grace=10.0))
            etc = str(root / "etc")

            def control(action: str) -> None:
                space.run("postfix", "-c", etc, action, check=action == "start")
        else:

            def control(action: str) -> None:
                _postfix(root, action)

        control("start")
        try:
            submit(destination.host, port, built)
            return collect(destination, built, out, mta, version, timeout)
        finally:
            control("stop")
            shutil.copy(root / "maillog", out.parent / (log or f"{mta}.log"))


def _postfix(root: Path, *args: str) -> None:
    subprocess.run(["postfix", "-c", str(root / "etc"), *args], check=True, env=ENV)


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA)
    script_replies(destination, built)
    _configure(destination)
    return run(ROOT, PORT, destination, built, out, MTA)
