"""A throwaway Postfix relay for the benchmarks that compare with it (``smtp_accept``, ``e2e``).

Its own ``main.cf``, ``master.cf`` and queue directory in a scratch directory, smtpd on one
loopback port relaying every message to ``relayhost`` (a sink on another loopback port), queue
files fsync'd (Postfix's default), logging to ``<dir>/maillog``. Every process unchrooted, so
no chroot tree is needed; limits are Postfix's defaults (100 processes per service, 20
connections per destination).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

# The Postline relay measured beside it: relaying from loopback without AUTH (smtp-source has
# none), limits that never bind.
POSTLINE_RELAY_POLICY = """\
version: 1
servers:
  bench:
    relay:
      max_connections: 1000
      max_message_size: 10MiB
      rate_per_ip: 100000000/s
      relay_without_auth_from: [127.0.0.0/8]
    return_path_domain: bounce.example.test
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = postfix-bench.localhost
mydestination =
local_recipient_maps =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{sink_port}
smtpd_relay_restrictions = permit_mynetworks, reject
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
smtp_tls_security_level = none
smtpd_tls_security_level = none
{extra}"""

MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
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
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def wait_for_smtp(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as s:
            if s.recv(3) == b"220":
                return
        time.sleep(0.2)
    raise TimeoutError(f"no SMTP greeting on 127.0.0.1:{port} after {timeout}s")


@contextlib.contextmanager
def relay(workdir: Path, port: int, sink_port: int, extra: str = "") -> Iterator[Path]:
    """Postfix on 127.0.0.1:``port`` relaying to 127.0.0.1:``sink_port``; yields its config
    directory (``queue/pid/master.pid``, ``maillog``). Stopped, and waited for, on exit."""
    config = workdir / "postfix"
    config.mkdir()
    (config / "queue").mkdir()
    (config / "data").mkdir()
    (config / "main.cf").write_text(MAIN_CF.format(dir=config, sink_port=sink_port, extra=extra))
    (config / "master.cf").write_text(MASTER_CF.format(port=port))
    shutil.chown(config / "data", user="postfix")
    # The first check creates the queue's directories (and warns about what it made).
    subprocess.run(["postfix", "-c", str(config), "check"], check=False, capture_output=True)
    subprocess.run(["postfix", "-c", str(config), "start"], check=True, capture_output=True)
    master = config / "queue" / "pid" / "master.pid"
    try:
        wait_for_smtp(port)
        yield config
    finally:
        subprocess.run(["postfix", "-c", str(config), "stop"], check=False, capture_output=True)
        with contextlib.suppress(OSError, ValueError):
            pid = int(master.read_text())
            deadline = time.monotonic() + 30
            while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
                time.sleep(0.1)
