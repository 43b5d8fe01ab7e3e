"""Dovecot's LMTP server from Debian's packages, as the mailbox server behind an MTA under test
(round 23): unpacked under ``/tmp/mta-filters/dovecot`` (never installed) and run as
``dovecot -F`` with a configuration of its own, so the replies an MTA's notice quotes are
Dovecot's own words, not a script's.

Debian's Dovecot finds its helpers and libraries at compiled-in paths under ``/usr``
(``/usr/bin/doveconf``, ``/usr/lib/dovecot``), which the system does not have: it runs in a
mount namespace of its own (``unshare -m``) where the unpacked ``usr`` is laid over the
system's with a read-only overlay (the system's ``/usr`` is not changed). Its internal and
mail users are ``nobody``.

The mailboxes (``USERS``): ``maria.lopez`` (empty; a message over ``quota_max_mail_size``
is refused), ``jana.kolar`` (already over her quota: refused at RCPT, ``lmtp_rcpt_check_quota``)
and ``lars.kemp`` (a home Dovecot cannot read: an internal error). Any other local part has
no mailbox.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from .host import ENV, Overlay, isolated, stop, wait_listening
from .packages import extract

PACKAGES = ["dovecot-core", "dovecot-lmtpd"]
ROOT = Path("/tmp/mta-filters/dovecot")
PORT = 8531  # 2531 + the helper's test port offset (6000)
NOBODY = 65534
USERS = ("maria.lopez", "jana.kolar", "lars.kemp")
QUOTA = "100K"
MAX_MAIL_SIZE = "20K"
OVER_QUOTA = 110_000  # bytes already in jana.kolar's mailbox

CONFIG = """\
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = lmtp
listen = 127.0.0.1
ssl = no
default_internal_user = nobody
default_internal_group = nogroup
default_login_user = nobody
first_valid_uid = 1
auth_username_format = %Ln
mail_location = maildir:~/Maildir
mail_plugins = quota
lmtp_rcpt_check_quota = yes
passdb {{
  driver = passwd-file
  args = {root}/etc/users
}}
userdb {{
  driver = passwd-file
  args = {root}/etc/users
}}
service lmtp {{
  inet_listener lmtp {{
    address = 127.0.0.1
    port = {port}
  }}
}}
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage={quota}
  quota_max_mail_size = {max_mail_size}
}}
"""


class Dovecot:
    """Dovecot's LMTP on 127.0.0.1:``PORT`` while the context is open."""

    host = "127.0.0.1"
    port = PORT
    log = ROOT / "dovecot.log"

    def __init__(self) -> None:
        self.version = ""
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Dovecot:
        self.version = extract(PACKAGES, ROOT / "root")["dovecot-core"]
        config = self._configure()
        usr = Overlay("/usr", lower=ROOT / "root/usr")
        command = isolated(["/usr/sbin/dovecot", "-F", "-c", str(config)], [usr])
        self._process = subprocess.Popen(command, env=ENV, start_new_session=True)
        wait_listening(PORT, "Dovecot")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._process is not None:
            stop(self._process)

    def _configure(self) -> Path:
        for folder in ("run", "state", "etc", "mail"):
            path = ROOT / folder
            if path.exists():
                shutil.rmtree(path)
            path.mkdir(parents=True)
        (ROOT / "mail").chmod(0o755)
        users = []
        for user in USERS:
            home = ROOT / "mail" / user
            users.append(f"{user}:{{PLAIN}}-:{NOBODY}:{NOBODY}::{home}::")
            for sub in ("cur", "new", "tmp"):
                (home / "Maildir" / sub).mkdir(parents=True)
            if user == "jana.kolar":
                stored = home / "Maildir/cur" / f"1764979200.M1P1.mx,S={OVER_QUOTA}:2,S"
                stored.write_bytes(b"Subject: old\n\n" + b"x" * (OVER_QUOTA - 15) + b"\n")
            for path in (home, *home.rglob("*")):
                os.chown(path, NOBODY, NOBODY)
            if user == "lars.kemp":
                os.chown(home, 0, 0)
                home.chmod(0o700)  # Dovecot, as nobody, cannot open the mailbox
        (ROOT / "etc/users").write_text("\n".join(users) + "\n")
        config = ROOT / "etc/dovecot.conf"
        config.write_text(
            CONFIG.format(root=ROOT, port=PORT, quota=QUOTA, max_mail_size=MAX_MAIL_SIZE)
        )
        return config
