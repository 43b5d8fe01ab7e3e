"""A mailing list manager's answers (round 52): Sympa 6.2.70 (Debian 12's ``sympa``
``6.2.70~dfsg-2+deb12u2``, GPL-2: only run, nothing of it enters this repository), unpacked
under ``/tmp/mta-sympa/root`` with the Perl modules and the two C libraries it loads
(:data:`PACKAGES`, ``apt-get download`` and ``dpkg -x``; never installed).

Sympa finds its code, its defaults and its files at compiled-in paths (``/usr/share/sympa``,
``/etc/sympa/sympa/sympa.conf``, ``/var/spool/sympa``, ``/var/lib/sympa``, ``/run/sympa``):
it runs in a mount namespace of its own where the unpacked ``usr`` is laid read-only over the
system's (its Perl modules land where the system's Perl looks) and ``/etc``, ``/var`` and
``/run`` are seen through writable layers under ``/tmp/mta-sympa/run`` (the system's files are
never changed). Its user ``sympa`` is a line of the ``/etc`` layer's ``passwd``. Its database
is SQLite (``/var/lib/sympa/sympa.sqlite``); its logs go to syslog over UDP, which nothing
reads here (the daemons, run in the foreground, print theirs to ``run/*.log``).

The lists (:data:`LISTS`, domain ``birch.test``) are made with ``sympa.pl create`` from an XML
description and a list template of our own (``create_list_templates/bench``: the list's
``send`` scenario and ``max_size``, Sympa's documented parameters), their owner, editor and
subscriber added with ``sympa.pl add``. Mail comes in as an MTA's alias hands it over: the
message on the standard input of Sympa's ``queue`` program (run as ``sympa``), which puts it in
the incoming spool; ``sympa_msg.pl`` (in the foreground) processes it and ``bulk.pl`` sends
what Sympa answers with the program of its ``sendmail`` setting: here a small script of ours
(:data:`SENDMAIL`) that hands the message over SMTP, as it is, to the capture server (the
sender's domain, ``sender.test``) or the scripted server (every other: the lists' owner and
moderator at ``walnut.test``). The cases are ``sympa`` in ``sympa_cases.yaml``; a command
case's message carries its command (:data:`COMMANDS`) as its subject and its one body line.
Bounce management (:data:`BOUNCING`) runs ``bounced.pl`` and ``task_manager.pl`` as well, with
thresholds low enough for one bounce on the day of one post to count (``sympa.conf``'s
``minimum_bouncing_count`` 1, ``minimum_bouncing_period`` and ``bounce_delay`` 0; the list's
``bouncers_level1`` rate 1, action ``notify_bouncers``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .cases import Case, collect, load, message
from .destination import Destination
from .dsn import member_dsn
from .host import Namespace, Overlay, identities, stop
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "sympa"
ROOT = Path("/tmp/mta-sympa")
DOMAIN = "birch.test"
UID = 990  # the namespace's ``sympa`` user and group (free on this system)
TIMEOUT = 120.0  # seconds for every case's answer
OWNER = "owner@walnut.test"
EDITOR = "chair@walnut.test"
SUBSCRIBER = "sam.ortiz@walnut.test"
# Sympa, the C libraries its Perl modules load, and the Perl modules it depends on (those not
# on this system; Debian 12's, unpacked over the system's /usr in the namespace).
PACKAGES = [
    "sympa", "libsombok3", "libfcgi0ldbl", "mhonarc",
    "libalgorithm-c3-perl", "libappconfig-perl", "libarchive-zip-perl",
    "libb-hooks-endofscope-perl", "libb-hooks-op-check-perl", "libcgi-fast-perl",
    "libcgi-pm-perl", "libclass-accessor-perl", "libclass-c3-perl",
    "libclass-data-inheritable-perl", "libclass-inspector-perl",
    "libclass-method-modifiers-perl", "libclass-methodmaker-perl", "libclass-mix-perl",
    "libclass-singleton-perl", "libclone-perl", "libconvert-asn1-perl", "libconvert-binhex-perl",
    "libcrypt-eksblowfish-perl", "libcrypt-openssl-bignum-perl", "libcrypt-openssl-random-perl",
    "libcrypt-openssl-rsa-perl", "libcrypt-openssl-x509-perl", "libcrypt-smime-perl",
    "libdata-optlist-perl", "libdatetime-format-mail-perl", "libdatetime-locale-perl",
    "libdatetime-perl", "libdatetime-timezone-perl", "libdbd-sqlite3-perl", "libdbi-perl",
    "libdevel-callchecker-perl", "libdevel-stacktrace-perl", "libdigest-hmac-perl",
    "libdynaloader-functions-perl", "libemail-date-format-perl", "libencode-locale-perl",
    "libeval-closure-perl", "libexception-class-perl", "libfcgi-perl",
    "libfile-copy-recursive-perl", "libfile-find-rule-perl", "libfile-nfslock-perl",
    "libfile-sharedir-perl", "libfont-afm-perl", "libgetopt-long-descriptive-perl",
    "libhtml-format-perl", "libhtml-parser-perl", "libhtml-stripscripts-parser-perl",
    "libhtml-stripscripts-perl", "libhtml-tagset-perl", "libhtml-tree-perl",
    "libhttp-date-perl", "libhttp-message-perl", "libintl-perl", "libio-html-perl",
    "libio-sessiondata-perl", "libio-socket-ip-perl", "libio-socket-ssl-perl",
    "libio-stringy-perl", "libjson-perl", "liblwp-mediatypes-perl",
    "libmail-authenticationresults-perl", "libmail-dkim-perl", "libmailtools-perl",
    "libmime-charset-perl", "libmime-encwords-perl", "libmime-lite-html-perl",
    "libmime-lite-perl", "libmime-tools-perl", "libmime-types-perl",
    "libmodule-implementation-perl", "libmodule-runtime-perl", "libmro-compat-perl",
    "libnamespace-autoclean-perl", "libnamespace-clean-perl", "libnet-cidr-perl",
    "libnet-dns-perl", "libnet-ldap-perl", "libnet-netmask-perl", "libnet-ssleay-perl",
    "libnumber-compare-perl", "libpackage-stash-perl", "libparams-classify-perl",
    "libparams-util-perl", "libparams-validate-perl", "libparams-validationcompiler-perl",
    "libregexp-common-perl", "librole-tiny-perl", "libsoap-lite-perl", "libspecio-perl",
    "libsub-exporter-perl", "libsub-exporter-progressive-perl", "libsub-identify-perl",
    "libsub-install-perl", "libsub-name-perl", "libsub-quote-perl", "libtask-weaken-perl",
    "libtemplate-perl", "libterm-progressbar-perl", "libterm-readkey-perl",
    "libtext-glob-perl", "libtimedate-perl", "libunicode-linebreak-perl", "liburi-perl",
    "libvariable-magic-perl", "libxml-libxml-perl", "libxml-namespacesupport-perl",
    "libxml-sax-base-perl", "libxml-sax-perl", "libxstring-perl",
]  # fmt: skip

# Each list: its ``send`` scenario (Sympa's own: private = subscribers only, closed = nobody,
# editorkey = every post moderated, privateoreditorkey = a non-subscriber's post moderated),
# its subscription scenario, and its maximum message size (bytes) when it has one.
LISTS: dict[str, dict[str, str]] = {
    "members": {"send": "private", "subscribe": "open"},
    "events": {"send": "closed", "subscribe": "open"},
    "board": {"send": "editorkey", "subscribe": "auth"},
    "club": {"send": "privateoreditorkey", "subscribe": "open"},
    "digest": {"send": "public", "subscribe": "open", "max_size": "3000"},
    # bounce management: a member whose score reaches 1 is warned (Sympa's notify_bouncers)
    "weekly": {"send": "public", "subscribe": "open", "bouncers_rate": "1"},
}
# The bounce-management case: its sender subscribes to the list and posts to it (Sympa sends
# the post to every member, the poster too); an MTA's DSN for that member then comes to the
# list's bounce address (Sympa's ``bouncequeue``), ``bounced.pl`` scores it and
# ``task_manager.pl``'s tasks (eval_bouncers, process_bouncers, run when it starts) warn the
# member. The case's answer is the last of the member's two messages (the post, the warning).
BOUNCING = "member-bouncing"
# A command case's command (to sympa@birch.test): its message's subject and one body line.
# QUIET (Sympa's prefix) keeps a subscription to one answer (without it, two): the report that
# it was done (the welcome left out), or the request to confirm it (the report left out).
COMMANDS = {
    "command-help": "help",
    "command-subscribe": "QUIET subscribe members Olga Berg",
    "command-subscribe-confirm": "QUIET subscribe board",
    "command-review-refused": "review members",
    "command-unsubscribe-failed": "unsubscribe events",
}

SYMPA_CONF = """\
domain {domain}
listmaster listmaster@{domain}
lang {lang}
db_type SQLite
db_name /var/lib/sympa/sympa.sqlite
sendmail {sendmail}
sendmail_aliases none
log_socket_type inet
log_level 2
minimum_bouncing_count 1
minimum_bouncing_period 0
bounce_delay 0
"""
# The list template ``bench`` (Sympa's list configuration parameters, filled from the XML).
TEMPLATE = """\
subject [% subject %]

status [% status %]

visibility noconceal

subscribe [% subscribe %]

owner
  email [% owner.0.email %]
  profile privileged

send [% send %]

[% IF max_size -%]
max_size [% max_size %]

[% END -%]
[% IF bouncers_rate -%]
bouncers_level1
  rate [% bouncers_rate %]
  action notify_bouncers
  notification none

[% END -%]
review owner

creation
  date_epoch [% creation.date_epoch %]
  date       [% creation.date %]
"""
LIST_XML = """\
<?xml version="1.0" ?>
<list>
<listname>{name}</listname>
<type>bench</type>
<subject>{title}</subject>
<description>The {name} list</description>
<topics>other</topics>
<status>open</status>
<send>{send}</send>
<subscribe>{subscribe}</subscribe>
<owner multiple="1"><email>{owner}</email></owner>
{more}</list>
"""
# Sympa's ``sendmail``: called as ``sendmail -oi -odi -oem -f SENDER -- RCPT...`` (its
# ``sendmail_args``), the message on its standard input (LF lines); hands it over SMTP
# unchanged but for its line ends.
SENDMAIL_SCRIPT = """\
#!/usr/bin/python3
import smtplib, sys

args, sender, rcpts = sys.argv[1:], "", []
while args:
    arg = args.pop(0)
    if arg == "-f":
        sender = args.pop(0)
    elif arg == "--":
        rcpts += args
        break
    elif not arg.startswith("-"):
        rcpts.append(arg)
# in CRLF lines, as an MTA sends a message over SMTP
raw = sys.stdin.buffer.read().replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
for rcpt in rcpts:
    port = {capture} if rcpt.lower().endswith("@sender.test") else {remote}
    with smtplib.SMTP("{host}", port, timeout=30) as client:
        client.sendmail(sender, [rcpt], raw)
"""


@dataclass(frozen=True)
class Run:
    """One run of Sympa: the rows' name (``mta``), where its packages are unpacked (``root``,
    once for every run under it) and its layers written (``folder``), the language of its
    ``sympa.conf`` (``lang``: the robot's, and its lists' as they are created; round 77) and
    what each case's name has before the kind of case (``prefix``: ``de-`` in round 77's
    ``de-post-not-member``; round 52's names have none)."""

    mta: str = MTA
    root: Path = ROOT
    folder: Path = ROOT / "run"
    lang: str = "en-US"
    prefix: str = ""

    @property
    def sendmail(self) -> Path:
        return self.folder / "sendmail"

    def kind(self, case: Case) -> str:
        return case.name.removeprefix(self.prefix)


def _configure(destination: Destination, run: Run) -> None:
    """A fresh ``run`` folder: the ``/etc``, ``/var`` and ``/run`` layers (and their overlays'
    work folders) with Sympa's settings, its list template, the lists' XML and its user."""
    folder = run.folder
    if folder.exists():
        shutil.rmtree(folder)
    for each in ("etc/sympa", "etc-work", "var/spool/sympa/msg", "var/spool/sympa/bounce",
                 "var/lib/sympa/list_data", "var/lib/sympa/bounce", "var/lib/sympa/arc",
                 "var-work", "run/sympa", "run-work"):  # fmt: skip
        (folder / each).mkdir(parents=True)
    shutil.copytree(run.root / "root/etc/sympa", folder / "etc/sympa", dirs_exist_ok=True)
    identities(folder / "etc", [f"sympa:x:{UID}:{UID}:Sympa:/var/lib/sympa:/usr/sbin/nologin"],
               [f"sympa:x:{UID}:"])  # fmt: skip
    (folder / "etc/sympa/sympa/sympa.conf").write_text(
        SYMPA_CONF.format(domain=DOMAIN, sendmail=run.sendmail, lang=run.lang)
    )
    template = folder / "etc/sympa/create_list_templates/bench"
    template.mkdir(parents=True)
    (template / "config.tt2").write_text(TEMPLATE)
    for name, settings in LISTS.items():
        more = "".join(f"<{key}>{settings[key]}</{key}>\n" for key in ("max_size", "bouncers_rate")
                       if key in settings)  # fmt: skip
        (folder / f"var/lib/sympa/{name}.xml").write_text(
            LIST_XML.format(name=name, title=name.title(), send=settings["send"],
                            subscribe=settings["subscribe"], owner=OWNER, more=more)
        )  # fmt: skip
    run.sendmail.write_text(
        SENDMAIL_SCRIPT.format(host=destination.host, capture=destination.capture_port,
                               remote=destination.port)
    )  # fmt: skip
    run.sendmail.chmod(0o755)
    for layer in ("etc/sympa", "var/spool/sympa", "var/lib/sympa", "run/sympa"):
        for path in (folder / layer, *(folder / layer).rglob("*")):
            os.lchown(path, UID, UID)


def _sympa(namespace: Namespace, *arguments: str, stdin: bytes = b"") -> None:
    done = subprocess.run(
        namespace.inside("/usr/lib/sympa/bin/sympa.pl", *arguments), input=stdin,
        capture_output=True, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"sympa.pl {' '.join(arguments)}: {done.stderr.decode()[-2000:]}")


def _make_lists(namespace: Namespace, members: dict[str, str]) -> None:
    """The lists, their subscriber (and ``members``: list to address), board's editor."""
    _sympa(namespace, "--health_check")
    for name in LISTS:
        _sympa(namespace, "create", f"--input_file=/var/lib/sympa/{name}.xml")
        _sympa(namespace, "add", "--quiet", f"{name}@{DOMAIN}", stdin=SUBSCRIBER.encode())
    _sympa(namespace, "add", "--quiet", "--role=editor", f"board@{DOMAIN}", stdin=EDITOR.encode())
    for name, address in members.items():
        _sympa(namespace, "add", "--quiet", name, stdin=address.encode())
    # what sympa.pl, run as root, made (the SQLite database) is the daemons' to write
    namespace.run("chown", "-R", f"{UID}:{UID}", "/var/lib/sympa", "/var/spool/sympa")


def _message(case: Case, number: int, kind: str) -> bytes:
    """The case's message as an MTA hands it to a program (LF lines): a command case's carries
    its command as its subject and body."""
    return message(case, number, COMMANDS.get(kind)).replace(b"\r\n", b"\n")


def _as_sympa(namespace: Namespace, program: str, argument: str, raw: bytes, what: str) -> None:
    """``raw`` on the standard input of one of Sympa's spool programs, run as ``sympa``."""
    command = namespace.inside("setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups",
                               f"/usr/lib/sympa/bin/{program}", argument)  # fmt: skip
    done = subprocess.run(command, input=raw, capture_output=True, timeout=60)
    if done.returncode != 0:
        logger.warning("%s: %s refused it (%s): %s", what, program, done.returncode, done.stderr)


def _bounce_management(
    namespace: Namespace, destination: Destination, case: Case, run: Run
) -> list[subprocess.Popen[bytes]]:
    """The member's DSN handed to Sympa once the member has the list's post; the daemons that
    score it and warn the member, started (returned, to be stopped with the others)."""
    member, listed = case.sender, case.recipients[0]
    deadline = time.monotonic() + TIMEOUT
    while not destination.notices(member) and time.monotonic() < deadline:
        time.sleep(0.5)
    name = listed.partition("@")[0]
    dsn = member_dsn(member, f"{name}-owner@{DOMAIN}", 1)
    _as_sympa(namespace, "bouncequeue", listed, dsn.encode(), case.name)
    bounced = _daemon(namespace, "bounced.pl", run)
    spool = run.folder / "var/spool/sympa/bounce"
    while time.monotonic() < deadline and (
        not spool.is_dir() or any(p.is_file() for p in spool.iterdir())
    ):
        time.sleep(0.5)
    manager = _daemon(namespace, "task_manager.pl", run)
    while len(destination.notices(member)) < 2 and time.monotonic() < deadline:
        time.sleep(0.5)
    return [bounced, manager]


def _daemon(namespace: Namespace, program: str, run: Run) -> subprocess.Popen[bytes]:
    with (run.folder / f"{program}.log").open("wb") as log:
        return subprocess.Popen(
            namespace.inside(f"/usr/lib/sympa/bin/{program}", "--foreground"),
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    return deliver(out, destination, load(MTA), Run())


def deliver(out: Path, destination: Destination, built: list[Case], run: Run) -> list[Row]:
    """Sympa run once as ``run`` says, for ``built`` (each case's kind its name without the
    run's prefix); its answers written to ``out`` and their rows returned."""
    version = extract(PACKAGES, run.root / "root")["sympa"]
    _configure(destination, run)
    mounts = [
        Overlay("/usr", lower=run.root / "root/usr"),
        *(Overlay(f"/{name}", upper=run.folder / name) for name in ("etc", "var", "run")),
    ]
    with Namespace(run.mta, mounts, grace=10.0) as namespace:
        bouncing = [case for case in built if run.kind(case) == BOUNCING]
        _make_lists(namespace, {c.recipients[0]: c.sender for c in bouncing})
        daemons = [_daemon(namespace, p, run) for p in ("sympa_msg.pl", "bulk.pl")]
        try:
            for number, case in enumerate(built, start=1):
                _as_sympa(namespace, "queue", case.recipients[0],
                          _message(case, number, run.kind(case)), case.name)  # fmt: skip
            for case in bouncing:
                daemons += _bounce_management(namespace, destination, case, run)
            described = f"Sympa {version}" + (f" (lang {run.lang})" if run.prefix else "")
            return collect(destination, built, out, run.mta, described, TIMEOUT)
        finally:
            for daemon in daemons:
                stop(daemon)
