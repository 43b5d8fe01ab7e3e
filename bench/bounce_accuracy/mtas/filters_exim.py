"""Exim's notices of what filters and mailbox servers answer (round 23): Debian's Exim, unpacked
and run as round 21's (``exim.py``: a daemon with ``-C``, its user ``Debian-exim`` in a mount
namespace's copy of the passwd and group files), under ``/tmp/mta-filters/exim``.

It sends ``oak.test`` over LMTP to Dovecot run for real (``dovecot.py``), ``hollow.test`` over
LMTP to the scripted LMTP server (``lmtp.py``), ``larch.test`` to the scripted SMTP server and
``sender.test`` (the notices) to the capture server. The cases are ``filters_exim`` in
``filter_cases.yaml``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from . import exim
from .cases import FILTER_CASES, collect, load, submit
from .destination import Destination
from .dovecot import Dovecot
from .lmtp import ScriptedLMTP
from .packages import extract
from .rows import Row

MTA = "filters_exim"
ROOT = Path("/tmp/mta-filters/exim")
BINARY = ROOT / "root/usr/sbin/exim4"
LIBRARIES = ROOT / "root/usr/lib/x86_64-linux-gnu"
PORT = 8527  # 2527 + the helper's test port offset (6000)
TIMEOUT = 240.0

CONFIGURE = """\
primary_hostname = mx.birchwood.test
qualify_domain = birchwood.test
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
  domains = larch.test
  transport = to_remote
  route_list = * 127.0.0.1
  self = send

dovecot:
  driver = manualroute
  domains = oak.test
  transport = to_dovecot
  route_list = * 127.0.0.1
  self = send

cyrus:
  driver = manualroute
  domains = hollow.test
  transport = to_cyrus
  route_list = * 127.0.0.1
  self = send

begin transports

to_capture:
  driver = smtp
  port = {capture_port}

to_remote:
  driver = smtp
  port = {remote_port}

to_dovecot:
  driver = smtp
  protocol = lmtp
  port = {dovecot_port}

to_cyrus:
  driver = smtp
  protocol = lmtp
  port = {lmtp_port}

begin retry

*  *  F,60s,5s
"""


def _configure(destination: Destination, dovecot: Dovecot, lmtp: ScriptedLMTP) -> Path:
    for folder in ("spool", "log", "etc"):
        path = ROOT / folder
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    for folder in ("spool", "log"):
        os.chown(ROOT / folder, exim.USER_ID, exim.USER_ID)
    user = f"Debian-exim:x:{exim.USER_ID}:{exim.USER_ID}::{ROOT}:/bin/false"
    (ROOT / "passwd").write_text("\n".join([*exim._getent("passwd"), user]) + "\n")
    group = f"Debian-exim:x:{exim.USER_ID}:"
    (ROOT / "group").write_text("\n".join([*exim._getent("group"), group]) + "\n")
    config = ROOT / "etc" / "exim.conf"
    config.write_text(
        CONFIGURE.format(
            binary=BINARY,
            root=ROOT,
            port=PORT,
            capture_port=destination.capture_port,
            remote_port=destination.port,
            dovecot_port=dovecot.port,
            lmtp_port=lmtp.port,
        )
    )
    return config


def _in_namespace(config: Path, *args: str) -> list[str]:
    script = (
        f"mount --bind {ROOT}/passwd /etc/passwd && mount --bind {ROOT}/group /etc/group && "
        f'exec {BINARY} -C {config} "$@"'
    )
    return ["unshare", "-m", "sh", "-c", script, "exim", *args]


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(exim.PACKAGES, ROOT / "root")["exim4-daemon-light"]
    BINARY.chmod(0o755)  # as exim.py: no set-uid bit, so LD_LIBRARY_PATH is kept
    built = load(MTA, FILTER_CASES)
    for case in built:
        for address, reply in case.scripts.items():
            destination.script(address, reply)
    with Dovecot() as dovecot, ScriptedLMTP(destination, "mx.hollow.test") as lmtp:
        config = _configure(destination, dovecot, lmtp)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": str(LIBRARIES)}
        daemon = subprocess.Popen(
            _in_namespace(config, "-bdf", "-q5s"), env=env, start_new_session=True
        )
        try:
            exim._wait_for_port(PORT)
            submit(destination.host, PORT, built)
            return collect(destination, built, out, MTA, version, TIMEOUT)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=10)
            shutil.copy(ROOT / "log" / "mainlog", out.parent / f"{MTA}.log")
            shutil.copy(dovecot.log, out.parent / f"{MTA}-dovecot.log")
