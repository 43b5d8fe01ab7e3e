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

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

from .cases import collect, load, submit
from .destination import Destination
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "exim"
PACKAGES = ["exim4-daemon-light", "exim4-base", "libidn12"]
ROOT = Path("/tmp/mta-exim")
BINARY = ROOT / "root/usr/sbin/exim4"
LIBRARIES = ROOT / "root/usr/lib/x86_64-linux-gnu"
PORT = 6527  # 2527 + the helper's test port offset (4000)
USER_ID = 64999  # Debian-exim, in the namespace's passwd only
TIMEOUT = 240.0

CONFIGURE = """\
primary_hostname = mx.alder.test
qualify_domain = alder.test
domainlist local_domains = alder.test
hostlist relay_from_hosts = 127.0.0.1
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
acl_smtp_rcpt = acl_check_rcpt
message_size_limit = 100K
smtp_accept_queue_per_connection = 0
delay_warning = 20s:1h
never_users = root

begin acl

acl_check_rcpt:
  accept hosts = +relay_from_hosts
  deny message = relay not permitted

begin routers

capture:
  driver = manualroute
  domains = sender.test
  transport = to_capture
  route_list = * 127.0.0.1
  self = send

remote:
  driver = manualroute
  domains = hazel.test
  transport = to_remote
  route_list = * 127.0.0.1
  self = send

refused:
  driver = manualroute
  domains = elm.test
  transport = to_refused
  route_list = * 127.0.0.1
  self = send

silent:
  driver = manualroute
  domains = ash.test
  transport = to_silent
  route_list = * 127.0.0.1
  self = send

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

begin transports

to_capture:
  driver = smtp
  port = {capture_port}

to_remote:
  driver = smtp
  port = {remote_port}

to_refused:
  driver = smtp
  port = {refused_port}
  connect_timeout = 5s

to_silent:
  driver = smtp
  port = {silent_port}
  connect_timeout = 5s
  command_timeout = 5s

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

begin retry

*  *  F,60s,5s
"""


def _configure(destination: Destination) -> Path:
    for folder in ("spool", "log", "mail", "etc"):
        path = ROOT / folder
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    for folder in ("spool", "log"):
        os.chown(ROOT / folder, USER_ID, USER_ID)
    (ROOT / "mail").chmod(0o1777)
    full = ROOT / "mail" / "sofia.kramer"
    full.write_bytes(b"From old@sender.test Thu Jan  1 00:00:00 2026\n" + b"x" * 21_000 + b"\n")
    os.chown(full, USER_ID, USER_ID)  # appendfile wants the mailbox owned by its user
    etc = ROOT / "etc"
    (etc / "aliases").write_text("paul.weber: paul.w@hazel.test\n")
    # the value found is $local_part_data, the (untainted) mailbox file's name
    (etc / "quota-mailboxes").write_text("sofia.kramer: sofia.kramer\n")
    (etc / "small-mailboxes").write_text("rosa.klein: rosa.klein\n")
    passwd = [*_getent("passwd"), f"Debian-exim:x:{USER_ID}:{USER_ID}::{ROOT}:/bin/false"]
    groups = [*_getent("group"), f"Debian-exim:x:{USER_ID}:"]
    (ROOT / "passwd").write_text("\n".join(passwd) + "\n")
    (ROOT / "group").write_text("\n".join(groups) + "\n")
    config = etc / "exim.conf"
    config.write_text(
        CONFIGURE.format(
            binary=BINARY,
            root=ROOT,
            port=PORT,
            capture_port=destination.capture_port,
            remote_port=destination.port,
            refused_port=destination.refused_port,
            silent_port=destination.silent_port,
        )
    )
    return config


def _getent(database: str) -> list[str]:
    out = subprocess.run(["getent", database], check=True, capture_output=True, text=True)
    return out.stdout.splitlines()


def _in_namespace(config: Path, *args: str) -> list[str]:
    """The command that runs Exim with ``args`` in a mount namespace with its user."""
    script = (
        f"mount --bind {ROOT}/passwd /etc/passwd && mount --bind {ROOT}/group /etc/group && "
        f'exec {BINARY} -C {config} "$@"'
    )
    return ["unshare", "-m", "sh", "-c", script, "exim", *args]


def generate(out: Path, destination: Destination) -> list[Row]:
    versions = extract(PACKAGES, ROOT / "root")
    version = versions["exim4-daemon-light"]
    # Run by root, Exim needs no set-uid bit; without it the loader keeps LD_LIBRARY_PATH
    # (kept by keep_environment) when Exim runs itself again for a delivery.
    BINARY.chmod(0o755)
    built = load(MTA)
    for case in built:
        for address, reply in case.scripts.items():
            destination.script(address, reply)
    config = _configure(destination)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": str(LIBRARIES)}
    # -bdf: the daemon in the foreground, so it is this process's child and stops with it.
    daemon = subprocess.Popen(
        _in_namespace(config, "-bdf", "-q5s"), env=env, start_new_session=True
    )
    try:
        _wait_for_port(PORT)
        submit(destination.host, PORT, built)
        return collect(destination, built, out, MTA, version, TIMEOUT)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=10)
        shutil.copy(ROOT / "log" / "mainlog", out.parent / f"{MTA}.log")


def _wait_for_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"Exim did not listen on 127.0.0.1:{port}")
