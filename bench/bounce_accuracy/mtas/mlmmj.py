"""A mailing list manager's automatic answers to a post (round 37): mlmmj 1.3.0 (``mlmmj``
``1.3.0-4``, unpacked under ``/tmp/mta-mlmmj/root``, never installed; it needs only libc),
run as its documentation sets it up: an instance of the system's Postfix (under
``/tmp/mta-mlmmj/postfix``) is the final destination of ``linden.test`` and hands each list's
mail to ``mlmmj-receive -L <list>`` through its aliases (``recipient_delimiter = +`` for the
lists' ``+subscribe`` addresses, local delivery as ``nobody``, the lists' owner); mlmmj sends
its answers through that Postfix (``control/relayhost``, ``control/smtpport``), which relays
``sender.test`` to the capture server and every other domain (moderators, subscribers) to the
scripted server. Each list's settings are ``LISTS`` (mlmmj's tunables, one file each under
``control/``), its texts Debian's English ones as ``mlmmj-make-ml`` copies them. The cases are
``mlmmj`` in ``auto_cases.yaml``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import replace
from pathlib import Path

from . import postfix
from .cases import load, script_replies
from .destination import Destination
from .packages import extract
from .rows import Row

MTA = "mlmmj"
PACKAGES = ["mlmmj"]
ROOT = Path("/tmp/mta-mlmmj")
PORT = 6445  # 2545 + the helper's test port offset (3900)
DOMAIN = "linden.test"
NOBODY = 65534
SUBDIRS = (
    "incoming",
    "queue",
    "queue/discarded",
    "archive",
    "text",
    "subconf",
    "unsubconf",
    "bounce",
    "control",
    "moderation",
    "subscribers.d",
    "digesters.d",
    "requeue",
    "nomailsubs.d",
)  # fmt: skip (as mlmmj-make-ml makes them)
SUBSCRIBER = "sam.ortiz@walnut.test"
MODERATOR = "chair@walnut.test"
# Each list's control files (an empty string: a boolean tunable set).
LISTS: dict[str, dict[str, str]] = {
    "members": {"subonlypost": ""},
    "board": {"moderated": "", "notifymod": "", "moderators": MODERATOR},
    "club": {"subonlypost": "", "modnonsubposts": "", "notifymod": "", "moderators": MODERATOR},
    "digest": {"maxmailsize": "3000"},
    "events": {"access": "deny ^From:.*@sender\\.test\nallow"},
}


def _make_lists() -> dict[str, str]:
    spool = ROOT / "lists"
    if spool.exists():
        shutil.rmtree(spool)
    skel = ROOT / "root/usr/share/mlmmj/text.skel/en"
    receive = ROOT / "root/usr/bin/mlmmj-receive"
    aliases = {}
    for name, tunables in LISTS.items():
        listdir = spool / name
        for sub in SUBDIRS:
            (listdir / sub).mkdir(parents=True)
        (listdir / "index").touch()
        for text in skel.iterdir():
            shutil.copy(text, listdir / "text" / text.name)
        control = {"listaddress": f"{name}@{DOMAIN}", "owner": f"owner@{DOMAIN}",
                   "relayhost": "127.0.0.1", "smtpport": str(PORT), **tunables}  # fmt: skip
        for key, value in control.items():
            (listdir / "control" / key).write_text(value + "\n" if value else "")
        (listdir / "subscribers.d" / SUBSCRIBER[0]).write_text(SUBSCRIBER + "\n")
        for path in (spool, *spool.rglob("*")):
            os.lchown(path, NOBODY, NOBODY)
        aliases[name] = f'"|{receive} -L {listdir}/"'
    return aliases


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA)
    version = extract(PACKAGES, ROOT / "root")["mlmmj"]
    script_replies(destination, built)
    aliases = _make_lists()
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        DOMAIN: "local:",  # (the wildcard below would take it too)
        "*": f"smtp:[{destination.host}]:{destination.port}",
    }
    master = postfix.LISTENER.format(port=PORT) + postfix.SERVICES
    postfix.configure(ROOT / "postfix", DOMAIN, master, routes, {"postmaster": "root", **aliases})
    with (ROOT / "postfix/etc/main.cf").open("a") as main:
        main.write("recipient_delimiter = +\n")
    rows = postfix.run(ROOT / "postfix", PORT, destination, built, out, MTA)
    return [replace(row, mta_version=f"mlmmj {version}") for row in rows]
