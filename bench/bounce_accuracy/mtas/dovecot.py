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

What every Dovecot here shares (round 35's Sieve too, ``sieve.py``): ``template`` (the
configuration, with the parts a caller adds), ``configure`` (a fresh root, its users' homes)
and ``running`` (the daemon in its namespace).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from .host import ENV, Overlay, isolated, listening
from .packages import extract

PACKAGES = ["dovecot-core", "dovecot-lmtpd"]
ROOT = Path("/tmp/mta-filters/dovecot")
PORT = 8531  # 2531 + the helper's test port offset (6000)
NOBODY = 65534
USERS = ("maria.lopez", "jana.kolar", "lars.kemp")
QUOTA = "100K"
MAX_MAIL_SIZE = "20K"
OVER_QUOTA = 110_000  # bytes already in jana.kolar's mailbox

# What every Dovecot here is: LMTP on 127.0.0.1:{port}, its files under {root}, users with
# maildir homes in {root}/etc/users, nobody its internal user. A caller's settings go after
# these, its sections (plugins, protocols) after the listener.
SETTINGS = """\
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
"""
SECTIONS = """\
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
"""


def template(settings: str = "", sections: str = "") -> str:
    """A configuration to ``str.format`` with ``root``, ``port`` and the names the caller's
    ``settings`` and ``sections`` use (braces of their own doubled)."""
    return SETTINGS + settings + SECTIONS + sections


# Round 23's cases: the quota plugin, checked at RCPT and for a message's size.
CONFIG = template(
    "mail_plugins = quota\nlmtp_rcpt_check_quota = yes\n",
    """\
plugin {{
  quota = maildir:User quota
  quota_rule = *:storage={quota}
  quota_max_mail_size = {max_mail_size}
}}
""",
)


def configure(
    root: Path,
    config: str,
    users: Iterable[str],
    furnish: Callable[[str, Path], None] | None = None,
    **values: object,
) -> Path:
    """A fresh Dovecot root: its run, state, etc and mail folders emptied (and a previous
    run's log removed), each of ``users`` a home ``mail/<user>`` with an empty Maildir, what
    ``furnish(user, home)`` adds, all owned by nobody; ``config`` formatted with ``root`` and
    ``values`` written to ``etc/dovecot.conf``, whose path is returned."""
    (root / "dovecot.log").unlink(missing_ok=True)
    for folder in ("run", "state", "etc", "mail"):
        path = root / folder
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
    (root / "mail").chmod(0o755)
    lines = []
    for user in users:
        home = root / "mail" / user
        lines.append(f"{user}:{{PLAIN}}-:{NOBODY}:{NOBODY}::{home}::")
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(parents=True)
        if furnish is not None:
            furnish(user, home)
        for path in (home, *home.rglob("*")):
            os.lchown(path, NOBODY, NOBODY)
    (root / "etc/users").write_text("\n".join(lines) + "\n")
    path = root / "etc/dovecot.conf"
    path.write_text(config.format(root=root, **values))
    return path


@contextmanager
def running(root: Path, config: Path, port: int) -> Iterator[None]:
    """Dovecot unpacked under ``root/root`` run with ``config`` (``dovecot -F``, its own output
    to ``root/dovecot.out``) in a mount namespace where that ``usr`` is laid over the
    system's, once it listens on 127.0.0.1:``port``; stopped on leaving."""
    usr = Overlay("/usr", lower=root / "root/usr")
    command = isolated(["/usr/sbin/dovecot", "-F", "-c", str(config)], [usr])
    with listening(command, port, "Dovecot", root / "dovecot.out", env=ENV):
        yield


def _furnish(user: str, home: Path) -> None:
    if user == "jana.kolar":
        stored = home / "Maildir/cur" / f"1764979200.M1P1.mx,S={OVER_QUOTA}:2,S"
        stored.write_bytes(b"Subject: old\n\n" + b"x" * (OVER_QUOTA - 15) + b"\n")


class Dovecot:
    """Dovecot's LMTP on 127.0.0.1:``PORT`` while the context is open (round 23's users)."""

    host = "127.0.0.1"
    port = PORT
    log = ROOT / "dovecot.log"

    def __init__(self) -> None:
        self.version = ""
        self._running = ExitStack()

    def __enter__(self) -> Dovecot:
        self.version = extract(PACKAGES, ROOT / "root")["dovecot-core"]
        config = configure(
            ROOT, CONFIG, USERS, _furnish, port=PORT, quota=QUOTA, max_mail_size=MAX_MAIL_SIZE
        )
        home = ROOT / "mail/lars.kemp"
        os.chown(home, 0, 0)
        home.chmod(0o700)  # Dovecot, as nobody, cannot open the mailbox
        self._running.enter_context(running(ROOT, config, PORT))
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.close()
