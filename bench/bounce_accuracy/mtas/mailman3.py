"""What a mailing list manager sends (round 51): Mailman 3 core, run for real on loopback.

Mailman 3.3.10 is installed from PyPI at that pinned version into a throwaway venv under
``/tmp/mta-mailman3/venv`` (never a dependency of the project; GPL-3, run only), with its own
configuration, var folder and SQLite database under ``/tmp/mta-mailman3``. Its master and
runners run in the foreground in a process group of their own; its LMTP runner listens on
127.0.0.1:``LMTP_PORT`` behind an instance of the system's Postfix (``/tmp/mta-mailman3/
postfix``, transport ``hazel.test`` -> lmtp), and its outgoing runner hands its mail to that
Postfix, which relays ``sender.test`` to the capture server and every other domain (owners,
members) to the scripted server. Lists, members and settings are made with Mailman's own
command line: ``mailman create``, ``mailman addmembers`` and ``mailman withlist -r`` (a small
function written beside the configuration). The cases are ``mailman3`` in
``mailman3_cases.yaml``.

One case is no post: ``welcome`` (a member added with ``--welcome-msg`` once the runners
run). In the two cases of the lists' own bounce processing the member's address fails for real
(scripted 550), and the notice Mailman then sends that member is read through Postfix's
``recipient_bcc_maps`` copy to the case's sender.test address: the post's copy comes first and
the notice last, so those cases wait for ``EXPECTED`` messages and keep the last.
"""

from __future__ import annotations

import email
import logging
import shutil
import smtplib
import subprocess
import time
from dataclasses import replace
from email.message import EmailMessage
from pathlib import Path

from . import postfix
from .cases import Case, load, message, script_replies, splits
from .destination import Destination
from .host import ENV, listening, wait_listening
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "mailman3"
VERSION = "3.3.10"
ROOT = Path("/tmp/mta-mailman3")
VENV = ROOT / "venv"
PORT = 7625  # Postfix: 2525 + the helper's test port offset (5100)
LMTP_PORT = 8124  # Mailman's LMTP runner: 3024 + 5100
REST_PORT = 9101  # Mailman's REST runner (unused here, on loopback): 4001 + 5100
DOMAIN = "hazel.test"
OWNER = "owner@walnut.test"
TIMEOUT = 180.0
# How long the runners and Postfix may take to listen: Mailman's master starts a dozen Python
# runners, slow to import on a loaded machine.
STARTUP = 300.0
# Postfix copies what is sent to a failing member to the case's capture address (bcc).
WATCHED = {"dana.ek@walnut.test": "bulletin-m3-09@sender.test",
           "jo.lind@walnut.test": "bulletin-m3-10@sender.test"}  # fmt: skip
EXPECTED = {"member-disabled": 2, "member-removed": 2}  # the post's copy, then the notice
ATTACHED = {"post-content-refused"}  # sent as multipart/mixed with a zip file

# Each list's settings (set by ``withlist``, values Python expressions on Mailman's enums) and
# members (the posters who must be members: held or filtered for what they post, not for who
# they are; the failing members of the bounce cases).
LISTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "members": ({"default_nonmember_action": "Action.reject"}, []),
    "photos": ({"filter_content": "True", "filter_action": "FilterAction.reject",
                "pass_types": "['text/plain', 'multipart/alternative', 'text/html']"},
               ["bulletin-m3-02@sender.test"]),
    "board": ({"default_member_action": "Action.hold"}, ["bulletin-m3-03@sender.test"]),
    "club": ({}, []),
    "alerts": ({"emergency": "True"}, ["bulletin-m3-05@sender.test"]),
    "digest": ({"max_message_size": "2"}, ["bulletin-m3-06@sender.test"]),
    "weekly": ({"default_nonmember_action": "Action.accept", "bounce_score_threshold": "1"},
               ["dana.ek@walnut.test"]),
    "forum": ({"default_member_action": "Action.reject"}, ["bulletin-m3-12@sender.test"]),
    "news": ({"default_nonmember_action": "Action.accept",
              "autorespond_postings": "ResponseAction.respond_and_continue",
              "autoresponse_postings_text": "'Thank you for your post to the News list.'"},
             []),
    "monthly": ({"default_nonmember_action": "Action.accept", "bounce_score_threshold": "1",
                 "bounce_you_are_disabled_warnings": "0"}, ["jo.lind@walnut.test"]),
}  # fmt: skip
WELCOMED = ("members", "bulletin-m3-08@sender.test")

CONFIG = """\
[mailman]
site_owner: {owner}
layout: r51
[paths.r51]
var_dir: {root}/var
[mta]
incoming: mailman.mta.null.NullMTA
lmtp_host: 127.0.0.1
lmtp_port: {lmtp}
smtp_host: 127.0.0.1
smtp_port: {smtp}
[webservice]
hostname: 127.0.0.1
port: {rest}
[runner.archive]
start: no
[runner.nntp]
start: no
[runner.digest]
start: no
"""

# Run by ``mailman withlist -l LIST -r r51_settings.apply NAME=VALUE ...`` inside Mailman.
SETTINGS = """\
from mailman.config import config
from mailman.interfaces.action import Action, FilterAction
from mailman.interfaces.autorespond import ResponseAction


def apply(mlist, *pairs):
    for pair in pairs:
        name, _, value = pair.partition('=')
        setattr(mlist, name, eval(value))
    config.db.commit()
"""


def _mailman(*args: str, stdin: bytes | None = None) -> None:
    command = [str(VENV / "bin/mailman"), "-C", str(ROOT / "mailman.cfg"), "--run-as-root", *args]
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, input=stdin, env=env, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"mailman {args[0]}: {done.stderr.decode(errors='replace')[-2000:]}")


def _install() -> None:
    if not (VENV / "bin/mailman").exists():
        subprocess.run(["python3", "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin/pip"), "install", "-q", f"mailman=={VERSION}"], check=True)


def _make_lists() -> None:
    var = ROOT / "var"
    if var.exists():
        shutil.rmtree(var)
    var.mkdir(parents=True)
    (ROOT / "mailman.cfg").write_text(
        CONFIG.format(owner=OWNER, root=ROOT, lmtp=LMTP_PORT, smtp=PORT, rest=REST_PORT)
    )
    (ROOT / "r51_settings.py").write_text(SETTINGS)
    for name, (settings, members) in LISTS.items():
        address = f"{name}@{DOMAIN}"
        _mailman("create", "--quiet", "-N", "-o", OWNER, address)
        if members:
            _mailman("addmembers", "--no-welcome-msg", "-", address,
                     stdin="".join(m + "\n" for m in members).encode())  # fmt: skip
        if settings:
            pairs = [f"{key}={value}" for key, value in settings.items()]
            _mailman("withlist", "-l", address, "-r", "r51_settings.apply", *pairs)


def _post(case: Case, number: int) -> bytes:
    raw = message(case, number)
    if case.name not in ATTACHED:
        return raw
    text = email.message_from_bytes(raw)
    mixed = EmailMessage()
    for key in ("From", "To", "Subject", "Date", "Message-ID"):
        mixed[key] = text[key]
    mixed.set_content(text.get_payload())
    mixed.add_attachment(b"PK\x05\x06" + bytes(18), maintype="application", subtype="zip",
                         filename="issue.zip")  # fmt: skip
    return mixed.as_bytes()


def _submit(destination: Destination, cases: list[Case]) -> None:
    with smtplib.SMTP(destination.host, PORT, timeout=30) as client:
        client.ehlo("app.sender.test")
        for number, case in enumerate(cases, start=1):
            if case.recipients:
                client.sendmail(case.sender, list(case.recipients), _post(case, number))


def _collect(destination: Destination, cases: list[Case], out: Path) -> list[Row]:
    split = splits().get(MTA, "unseen")
    deadline = time.monotonic() + TIMEOUT
    wanted = {c.name: EXPECTED.get(c.name, 1) for c in cases}
    while time.monotonic() < deadline:
        if all(len(destination.notices(c.sender)) >= wanted[c.name] for c in cases):
            break
        time.sleep(0.5)
    time.sleep(3)  # anything sent late (a second notice) would show here
    rows: list[Row] = []
    for case in cases:
        got = destination.notices(case.sender)
        if len(got) != wanted[case.name]:
            logger.warning("%s: %s messages came, not %s; left out", case.name, len(got),
                           wanted[case.name])  # fmt: skip
            continue
        (out / f"{case.name}.eml").write_bytes(got[-1].raw)
        rows += [
            Row(file=f"{MTA}/{case.name}.eml", recipient=recipient, status=label.status,
                delivery=label.delivery, note=label.note, mta=MTA,
                mta_version=f"Mailman {VERSION}", split=split)
            for recipient, label in case.failed.items()
        ]  # fmt: skip
    return rows


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA)
    _install()
    script_replies(destination, built)
    _make_lists()
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        DOMAIN: f"lmtp:inet:127.0.0.1:{LMTP_PORT}",
        "*": f"smtp:[{destination.host}]:{destination.port}",
    }
    master = (postfix.LISTENER.format(port=PORT) + postfix.SERVICES
              + "lmtp      unix  -       -       n       -       -       lmtp\n")  # fmt: skip
    box = ROOT / "postfix"
    postfix.configure(box, "mx-r51.test", master, routes, {"postmaster": "root"})
    (box / "etc/bcc").write_text("".join(f"{m} {c}\n" for m, c in WATCHED.items()))
    with (box / "etc/main.cf").open("a") as main:
        main.write(f"recipient_bcc_maps = texthash:{box}/etc/bcc\n")
    runners = [str(VENV / "bin/master"), "-C", str(ROOT / "mailman.cfg"), "--force"]
    env = {**ENV, "PYTHONPATH": str(ROOT)}
    version = postfix.installed_version("postfix")
    with listening(runners, LMTP_PORT, "Mailman's LMTP runner", out.parent / "mailman3.log",
                   env=env, timeout=STARTUP):  # fmt: skip
        subprocess.run(["postfix", "-c", str(box / "etc"), "start"], check=True, env=ENV)
        try:
            wait_listening(PORT, "Postfix", STARTUP)
            _submit(destination, built)
            welcome_list, welcomed = WELCOMED
            _mailman("addmembers", "--welcome-msg", "-", f"{welcome_list}@{DOMAIN}",
                     stdin=(welcomed + "\n").encode())  # fmt: skip
            rows = _collect(destination, built, out)
        finally:
            subprocess.run(["postfix", "-c", str(box / "etc"), "stop"], env=ENV)
            shutil.copy(box / "maillog", out.parent / "mailman3-postfix.log")
    logger.info("Postfix %s in front of Mailman %s", version, VERSION)
    return [replace(row, mta_version=f"Mailman {VERSION} (Postfix {version})") for row in rows]
