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
from dataclasses import dataclass, replace
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
# The bounce cases: their failing member (the address their case scripts a refusal for) is
# copied by Postfix to the case's own capture address (bcc), where the post's copy comes first
# and the notice last.
EXPECTED = {"member-disabled": 2, "member-removed": 2}
ATTACHED = {"post-content-refused"}  # sent as multipart/mixed with a zip file

# Each list's settings (set by ``withlist``, values Python expressions on Mailman's enums) and
# members: an address (the failing members of the bounce cases), or a kind of case whose
# sender must be a member (held or filtered for what it posts, not for who it is).
LISTS: dict[str, tuple[dict[str, str], list[str]]] = {
    "members": ({"default_nonmember_action": "Action.reject"}, []),
    "photos": ({"filter_content": "True", "filter_action": "FilterAction.reject",
                "pass_types": "['text/plain', 'multipart/alternative', 'text/html']"},
               ["post-content-refused"]),
    "board": ({"default_member_action": "Action.hold"}, ["post-moderated-member"]),
    "club": ({}, []),
    "alerts": ({"emergency": "True"}, ["post-emergency"]),
    "digest": ({"max_message_size": "2"}, ["post-over-size"]),
    "weekly": ({"default_nonmember_action": "Action.accept", "bounce_score_threshold": "1"},
               ["dana.ek@walnut.test"]),
    "forum": ({"default_member_action": "Action.reject"}, ["post-moderated-member-rejected"]),
    "news": ({"default_nonmember_action": "Action.accept",
              "autorespond_postings": "ResponseAction.respond_and_continue",
              "autoresponse_postings_text": "'Thank you for your post to the News list.'"},
             []),
    "monthly": ({"default_nonmember_action": "Action.accept", "bounce_score_threshold": "1",
                 "bounce_you_are_disabled_warnings": "0"}, ["jo.lind@walnut.test"]),
}  # fmt: skip
WELCOMED = ("members", "welcome")  # the list, and the kind of case whose sender it adds

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


@dataclass(frozen=True)
class Run:
    """One run of Mailman: the rows' name (``mta``), its folder (``root``: the venv, the
    configuration, the var folder, Postfix's instance), its ports (Postfix's, the LMTP
    runner's, the REST runner's), the lists' preferred language (``lang``, ``mailman create
    --language``; round 77; empty: Mailman's default, English) and what each case's name has
    before its kind (``prefix``: ``de-`` in round 77's ``de-post-not-member``)."""

    mta: str = MTA
    root: Path = ROOT
    port: int = PORT
    lmtp_port: int = LMTP_PORT
    rest_port: int = REST_PORT
    lang: str = ""
    prefix: str = ""

    @property
    def venv(self) -> Path:
        return self.root / "venv"

    def kind(self, case: Case) -> str:
        return case.name.removeprefix(self.prefix)


def _mailman(run: Run, *args: str, stdin: bytes | None = None) -> None:
    command = [str(run.venv / "bin/mailman"), "-C", str(run.root / "mailman.cfg"),
               "--run-as-root", *args]  # fmt: skip
    env = {**ENV, "PYTHONPATH": str(run.root)}
    done = subprocess.run(command, input=stdin, env=env, capture_output=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"mailman {args[0]}: {done.stderr.decode(errors='replace')[-2000:]}")


def _install(run: Run) -> None:
    venv = run.venv
    if not (venv / "bin/mailman").exists():
        subprocess.run(["python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin/pip"), "install", "-q", f"mailman=={VERSION}"], check=True)


def _member(entry: str, senders: dict[str, str]) -> str:
    """A list member of :data:`LISTS`: an address as it is, a kind of case its sender."""
    return entry if "@" in entry else senders[entry]


def _make_lists(run: Run, senders: dict[str, str]) -> None:
    var = run.root / "var"
    if var.exists():
        shutil.rmtree(var)
    var.mkdir(parents=True)
    (run.root / "mailman.cfg").write_text(
        CONFIG.format(owner=OWNER, root=run.root, lmtp=run.lmtp_port, smtp=run.port,
                      rest=run.rest_port)
    )  # fmt: skip
    (run.root / "r51_settings.py").write_text(SETTINGS)
    language = ["--language", run.lang] if run.lang else []
    for name, (settings, members) in LISTS.items():
        address = f"{name}@{DOMAIN}"
        _mailman(run, "create", "--quiet", "-N", *language, "-o", OWNER, address)
        if members:
            listed = "".join(_member(m, senders) + "\n" for m in members)
            _mailman(run, "addmembers", "--no-welcome-msg", "-", address, stdin=listed.encode())
        if settings:
            pairs = [f"{key}={value}" for key, value in settings.items()]
            _mailman(run, "withlist", "-l", address, "-r", "r51_settings.apply", *pairs)


def _post(case: Case, number: int, kind: str) -> bytes:
    raw = message(case, number)
    if kind not in ATTACHED:
        return raw
    text = email.message_from_bytes(raw)
    mixed = EmailMessage()
    for key in ("From", "To", "Subject", "Date", "Message-ID"):
        mixed[key] = text[key]
    mixed.set_content(text.get_payload())
    mixed.add_attachment(b"PK\x05\x06" + bytes(18), maintype="application", subtype="zip",
                         filename="issue.zip")  # fmt: skip
    return mixed.as_bytes()


def _submit(destination: Destination, cases: list[Case], run: Run) -> None:
    with smtplib.SMTP(destination.host, run.port, timeout=30) as client:
        client.ehlo("app.sender.test")
        for number, case in enumerate(cases, start=1):
            if case.recipients:
                client.sendmail(case.sender, list(case.recipients),
                                _post(case, number, run.kind(case)))  # fmt: skip


def _collect(destination: Destination, cases: list[Case], out: Path, run: Run) -> list[Row]:
    split = splits().get(run.mta, "unseen")
    deadline = time.monotonic() + TIMEOUT
    wanted = {c.name: EXPECTED.get(run.kind(c), 1) for c in cases}
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
            Row(file=f"{run.mta}/{case.name}.eml", recipient=recipient, status=label.status,
                delivery=label.delivery, note=label.note, mta=run.mta,
                mta_version=f"Mailman {VERSION}", split=split)
            for recipient, label in case.failed.items()
        ]  # fmt: skip
    return rows


def generate(out: Path, destination: Destination) -> list[Row]:
    return deliver(out, destination, load(MTA), Run())


def deliver(out: Path, destination: Destination, built: list[Case], run: Run) -> list[Row]:
    """Mailman and its Postfix run once as ``run`` says, for ``built`` (each case's kind its
    name without the run's prefix); their answers written to ``out``, their rows returned."""
    _install(run)
    script_replies(destination, built)
    senders = {run.kind(case): case.sender for case in built}
    # the bounce cases' failing members, copied to the cases' own addresses
    watched = {a: c.sender for c in built if run.kind(c) in EXPECTED for a in c.scripts}
    _make_lists(run, senders)
    routes = {
        "sender.test": f"smtp:[{destination.host}]:{destination.capture_port}",
        DOMAIN: f"lmtp:inet:127.0.0.1:{run.lmtp_port}",
        "*": f"smtp:[{destination.host}]:{destination.port}",
    }
    master = (postfix.LISTENER.format(port=run.port) + postfix.SERVICES
              + "lmtp      unix  -       -       n       -       -       lmtp\n")  # fmt: skip
    box = run.root / "postfix"
    postfix.configure(box, "mx-r51.test", master, routes, {"postmaster": "root"})
    (box / "etc/bcc").write_text("".join(f"{m} {c}\n" for m, c in watched.items()))
    with (box / "etc/main.cf").open("a") as main:
        main.write(f"recipient_bcc_maps = texthash:{box}/etc/bcc\n")
    runners = [str(run.venv / "bin/master"), "-C", str(run.root / "mailman.cfg"), "--force"]
    env = {**ENV, "PYTHONPATH": str(run.root)}
    version = postfix.installed_version("postfix")
    logs = out.parent / (run.mta + (f"-{run.lang}" if run.lang else ""))
    with listening(runners, run.lmtp_port, "Mailman's LMTP runner", Path(f"{logs}.log"),
                   env=env, timeout=STARTUP):  # fmt: skip
        subprocess.run(["postfix", "-c", str(box / "etc"), "start"], check=True, env=ENV)
        try:
            wait_listening(run.port, "Postfix", STARTUP)
            _submit(destination, built, run)
            welcome_list, welcomed = WELCOMED
            _mailman(run, "addmembers", "--welcome-msg", "-", f"{welcome_list}@{DOMAIN}",
                     stdin=(senders[welcomed] + "\n").encode())  # fmt: skip
            rows = _collect(destination, built, out, run)
        finally:
            subprocess.run(["postfix", "-c", str(box / "etc"), "stop"], env=ENV)
            shutil.copy(box / "maillog", Path(f"{logs}-postfix.log"))
    logger.info("Postfix %s in front of Mailman %s", version, VERSION)
    described = f"Mailman {VERSION} (Postfix {version})"
    if run.lang:
        described = f"Mailman {VERSION}, language {run.lang} (Postfix {version})"
    return [replace(row, mta_version=described) for row in rows]
