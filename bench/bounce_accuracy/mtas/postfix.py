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

import logging
import os
import shutil
import subprocess
from pathlib import Path

from .cases import collect, load, submit
from .destination import Destination
from .packages import installed_version
from .rows import Row

logger = logging.getLogger(__name__)

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

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
127.0.0.1:{small_port} inet n - n - - smtpd -o message_size_limit=10000
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
    if ROOT.exists():
        shutil.rmtree(ROOT)
    etc, mail = ROOT / "etc", ROOT / "mail"
    for folder in (etc, ROOT / "spool", ROOT / "data", mail):
        folder.mkdir(parents=True)
    mail.chmod(0o1777)
    shutil.chown(ROOT / "data", "postfix", "postfix")
    quota = mail / "sofia.kramer"
    quota.write_bytes(b"From old@sender.test  Thu Jan  1 00:00:00 2026\n" + b"x" * 50_000 + b"\n")
    quota.chmod(0o666)
    host = destination.host
    (etc / "transport").write_text(
        f"sender.test smtp:[{host}]:{destination.capture_port}\n"
        f"{REMOTE} smtp:[{host}]:{destination.port}\n"
        f"{REFUSED} smtp:[{host}]:{destination.refused_port}\n"
        f"{SILENT} smtp:[{host}]:{destination.silent_port}\n"
        f"{SMALL} smtp:[{host}]:{SMALL_PORT}\n"
    )
    (etc / "aliases").write_text(
        f"sofia.kramer {quota}\npaul.weber paul.w@{REMOTE}\npostmaster root\n"
    )
    (etc / "master.cf").write_text(MASTER_CF.format(port=PORT, small_port=SMALL_PORT))
    (etc / "main.cf").write_text(
        MAIN_CF.format(root=ROOT, local=LOCAL, warn=WARN_AFTER, lifetime=LIFETIME)
    )


def _postfix(*args: str) -> None:
    subprocess.run(["postfix", "-c", str(ROOT / "etc"), *args], check=True, env=_env())


def _env() -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}


def generate(out: Path, destination: Destination) -> list[Row]:
    version = installed_version("postfix")
    built = load(MTA)
    for case in built:
        for address, reply in case.scripts.items():
            destination.script(address, reply)
    _configure(destination)
    _postfix("start")
    try:
        submit(destination.host, PORT, built)
        return collect(destination, built, out, MTA, version, TIMEOUT)
    finally:
        _postfix("stop")
        shutil.copy(ROOT / "maillog", out.parent / f"{MTA}.log")
