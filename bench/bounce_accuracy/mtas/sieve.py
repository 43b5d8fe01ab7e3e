"""The rejections a mailbox's Sieve filter writes itself (round 35): Dovecot's Pigeonhole, the
Sieve interpreter behind Dovecot's LMTP server, runs a user's script at delivery; its
``reject`` action refuses the message and sends the sender a notice of its own (RFC 5429: a
``multipart/report`` in the form of a message disposition notification). (RFC 5429's
``ereject``, a refusal in the LMTP reply, is not in this Pigeonhole: "unknown Sieve
capability".)

Dovecot 2.3.19.1 with Pigeonhole (``dovecot-core``, ``dovecot-lmtpd``, ``dovecot-sieve``
``1:2.3.19.1+dfsg1-2.1+deb12u7``), unpacked under ``/tmp/mta-sieve/root`` (never installed),
runs as round 23's Dovecot does (``dovecot.py``'s ``configure`` and ``running``: a mount
namespace with the unpacked ``usr`` laid over the system's, its users ``nobody``). A fifth
instance of the system's Postfix (``postfix.configure``, under ``/tmp/mta-sieve/postfix``)
takes the cases' mail for ``aspen.test`` and delivers it to Dovecot over LMTP; Dovecot sends
its rejections to that Postfix (``submission_host``), which relays ``sender.test`` to the
capture server. Each user's Sieve script is ``SCRIPTS``; the cases are ``sieve`` in
``filter_cases.yaml``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from . import dovecot, postfix
from .cases import FILTER_CASES, Case, load, script_replies
from .destination import Destination
from .packages import extract
from .rows import Row

MTA = "sieve"
PACKAGES = ["dovecot-core", "dovecot-lmtpd", "dovecot-sieve"]
ROOT = Path("/tmp/mta-sieve")
PORT = 6035  # 2535 + the helper's test port offset (3500)
DOVECOT_PORT = 6037
LOCAL = "juniper.test"  # Postfix's own domain (nothing is sent to it)
DOMAIN = "aspen.test"  # the recipients' domain, whose mailboxes Dovecot keeps
TIMEOUT = 90.0

USERS = ("mira.solberg", "jonas.eklund", "ola.brekke")
# Each user's active Sieve script (ola.brekke has none: mail to her is delivered).
SCRIPTS = {
    "mira.solberg": 'require "reject";\nreject "Messages from this sender are not accepted.";\n',
    "jonas.eklund": (
        'require "reject";\n'
        'if header :contains "subject" "Newsletter" {\n'
        '  reject "I did not subscribe to this list. Please take me off it.";\n'
        "}\n"
    ),
}

LMTP_SERVICE = "lmtp      unix  -       -       n       -       -       lmtp\n"

# Dovecot's with Pigeonhole at LMTP delivery, its notices sent through Postfix ({postfix}).
CONFIG = dovecot.template(
    """\
hostname = mx.{domain}
postmaster_address = postmaster@{domain}
submission_host = 127.0.0.1:{postfix}
""",
    """\
protocol lmtp {{
  mail_plugins = $mail_plugins sieve
}}
plugin {{
  sieve = file:~/sieve;active=~/.dovecot.sieve
}}
""",
)


def serve(
    root: Path,
    port: int,
    dovecot_port: int,
    local: str,
    domain: str,
    users: tuple[str, ...],
    scripts: dict[str, str],
    destination: Destination,
    built: list[Case],
    out: Path,
    mta: str,
    aliases: dict[str, str] | None = None,
) -> list[Row]:
    """Dovecot with Pigeonhole (``CONFIG``, ``dovecot.configure`` and ``running``) for
    ``domain``'s ``users`` (their active Sieve ``scripts``) behind a Postfix instance under
    ``root`` (listening on ``port``, final destination of ``local`` with ``aliases``,
    ``domain`` over LMTP, ``sender.test`` to the capture server and any other domain to the
    scripted server); ``built`` submitted and their answers collected (``postfix.run``), the
    logs copied beside ``out`` (``<mta>-postfix.log``, ``<mta>-dovecot.log``). What the Sieve
    cases, ``vacation.py`` and ``receipts.py`` share."""
    version = extract(PACKAGES, root / "root")["dovecot-sieve"]

    def furnish(user: str, home: Path) -> None:
        (home / "sieve").mkdir()
        if user in scripts:
            (home / "sieve" / "filter.sieve").write_text(scripts[user])
            (home / ".dovecot.sieve").symlink_to("sieve/filter.sieve")

    config = dovecot.configure(
        root, CONFIG, users, furnish, port=dovecot_port, domain=domain, postfix=port
    )
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        domain: f"lmtp:inet:127.0.0.1:{dovecot_port}",
        local: "local:",  # (the wildcard below would take it too)
        "*": f"smtp:[{destination.host}]:{destination.port}",
    }
    master = postfix.LISTENER.format(port=port) + postfix.SERVICES + LMTP_SERVICE
    aliases = {"postmaster": "root", **(aliases or {})}
    postfix.configure(root / "postfix", local, master, routes, aliases)
    script_replies(destination, built)
    try:
        with dovecot.running(root, config, dovecot_port):
            return postfix.run(
                root / "postfix", port, destination, built, out, mta,
                version=version, timeout=TIMEOUT, log=f"{mta}-postfix.log",
            )  # fmt: skip
    finally:
        if (root / "dovecot.log").exists():
            shutil.copy(root / "dovecot.log", out.parent / f"{mta}-dovecot.log")


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, FILTER_CASES)
    return serve(ROOT, PORT, DOVECOT_PORT, LOCAL, DOMAIN, USERS, SCRIPTS, destination, built,
                 out, MTA)  # fmt: skip
