"""chasquid's notices (round 49): chasquid, an SMTP server written in Go, from Debian 12's
package ``chasquid`` (1.11-2+b2, Apache-2.0), unpacked under ``/tmp/mta-chasquid``
(``packages.extract``; never installed). Nothing of it enters this repository: it is only run
here to make notices.

chasquid runs as root in a mount namespace of its own (``host.Namespace``) where a private
``/etc/resolv.conf`` names the harness's DNS server (``dnsserver.py``, on :data:`DNS_ADDRESS`)
and the local delivery agents of round 39 (``lda.py``: procmail and maildrop from Debian 12's
packages) are laid over ``/usr``, with a full tmpfs; the system's files are never changed.
Its configuration directory is written under ``/tmp/mta-chasquid/run/conf``: a self-signed
certificate (chasquid will not start without one, and takes AUTH only over TLS), the local
domains ``quince.test`` (mail for it goes to its MDA) and ``sender.test`` (the senders'
domain: chasquid relays only for an authenticated user of a local domain, and sends its notice
to the sender's mailbox, through the same MDA).

Each case is submitted over the submission port (STARTTLS, AUTH as ``app@sender.test``).
chasquid delivers each recipient on its own: to a remote domain through the MX that the DNS
server names (chasquid dials every MX on one port, its ``-testing__outgoing_smtp_port``: the
scripted server's; the MX of the refused case is an address where nothing listens on it, the
silent case's an address where a server of this module takes the connection and never
greets), to ``quince.test`` through its ``mail_delivery_agent_bin``, here
:data:`DISPATCHER`: a shell script that runs, for each local part, the delivery program
``lda.furnish`` gives it (the one a site's MDA would be), and hands mail for ``sender.test``
(the notices) to the capture server.

chasquid sends a notice (its DSN template, ``internal/queue/dsn.go``) once every recipient is
done: at once when every failure is permanent (a 5xx reply, an MDA's exit status other than
75), otherwise when its queue gives up, 20 hours after the message came (``giveUpAfter``, a
constant: neither its configuration nor a flag shortens it). Within a run, that lifetime is
reached by moving the queued message's creation time back: once chasquid has tried every
pending recipient (its last failure is written in the queue's file), it is stopped, the
``created_at_ts`` of each queued message is moved back 21 hours, and it is started again: it
loads its queue, finds the messages past their lifetime and sends its notice for them at
once, with the last error it recorded ("failed repeatedly and timed out, last error"). The
notice is chasquid's own; only its clock was skipped. The silent server's case needs chasquid's
first try to end, which takes its total timeout (ten minutes, a constant).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

from . import lda
from .cases import Case, collect, load, message, script_replies
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Bind, Namespace, stop, wait_listening
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "chasquid"
ROOT = Path("/tmp/mta-chasquid")
RUN = ROOT / "run"
CONF = RUN / "conf"
DATA = RUN / "data"
DISPATCHER = RUN / "mda"
CHASQUID = ROOT / "usr/bin/chasquid"
DNS_ADDRESS = "127.49.0.53"  # the DNS server's own loopback address (others use .41 to .57)
REFUSED_ADDRESS = "127.49.0.2"  # nothing listens here: connection refused
SILENT_ADDRESS = "127.49.0.3"  # a server of this module's own takes the connection, never greets
LOCAL = "quince.test"
SENDERS = "sender.test"
USER = "app@sender.test"
PASSWORD = "r49-submission"  # a throwaway account of the run's own chasquid
BACKDATE = 21 * 3600  # seconds: past chasquid's 20-hour queue lifetime
FIRST_TRY = float(
    os.environ.get("POSTLINE_CHASQUID_FIRST_TRY", "720")
)  # seconds for every first try to end (the silent server's takes ten minutes)
TIMEOUT = 120.0  # seconds for the notices once chasquid has loaded its back-dated queue

# The remote domains and what the DNS server answers (names carry no word of the failure); a
# name not in the table is NXDOMAIN (greengage.test).
TABLE = Table(
    {
        "medlar.test": Name(records=(("MX", "10 mx.medlar.test"),)),
        "mx.medlar.test": Name(records=(("A", "127.0.0.1"),)),  # the scripted server
        "sloe.test": Name(records=(("MX", "10 mx.sloe.test"),)),
        "mx.sloe.test": Name(records=(("A", REFUSED_ADDRESS),)),
        "damson.test": Name(records=(("MX", "10 mx.damson.test"),)),
        "mx.damson.test": Name(records=(("A", SILENT_ADDRESS),)),
        "mirabelle.test": Name(),  # the name exists, no MX, no A, no AAAA (NODATA)
        "cornel.test": Name(rcode=2),  # SERVFAIL on every query
        "hawthorn.test": Name(records=(("MX", "0 ."),)),  # a null MX (RFC 7505)
    }
)

CONFIG = """\
hostname: "mx.{local}"
smtp_address: "127.0.0.1:{smtp}"
submission_address: "127.0.0.1:{submission}"
mail_delivery_agent_bin: "{mda}"
mail_delivery_agent_args: "%to%"
mail_delivery_agent_args: "%from%"
data_dir: "{data}"
mail_log_path: "{run}/mail.log"
drop_characters: ""
"""

# The MDA chasquid runs: the delivery program of each local part (lda.furnish's), and the
# notices (mail for the senders' domain) handed to the capture server.
DISPATCHER_SCRIPT = """\
#!/bin/sh
to="$1"
from="$2"
case "$to" in
*@{senders}) exec {python} {forward} "$from" "$to" ;;
esac
case "${{to%@*}}" in
{programs}
esac
echo "no delivery program for $to"
exit 67
"""
FORWARD = """\
import smtplib
import sys

sender = "" if sys.argv[1] == "<>" else sys.argv[1]
raw = sys.stdin.buffer.read().replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
smtplib.SMTP("{host}", {port}).sendmail(sender, [sys.argv[2]], raw)
"""
# the local parts the cases use (lda.furnish's; those of Dovecot's LDA are left: no Dovecot
# here, and mira.sand's unwritable folder is no failure for chasquid's root)
LOCAL_PARTS = (
    "nadia.holm",
    "omar.voss",
    "greta.lind",
    "felix.horn",
    "ida.west",
    "karl.ott",
    "lisa.moor",
    "theo.falk",
    "kai.brandt",
)


def unpack() -> str:
    """chasquid unpacked under ROOT; its package version."""
    return extract(["chasquid"], ROOT)["chasquid"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _configure(destination: Destination) -> tuple[int, int]:
    """The configuration directory, data folder and MDA; chasquid's SMTP and submission
    ports."""
    if RUN.exists():
        shutil.rmtree(RUN)
    certs = CONF / "certs" / f"mx.{LOCAL}"
    certs.mkdir(parents=True)
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-subj", f"/CN=mx.{LOCAL}", "-keyout", str(certs / "privkey.pem"),
         "-out", str(certs / "fullchain.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    DATA.mkdir(parents=True)
    smtp, submission = _free_port(), _free_port()
    (CONF / "chasquid.conf").write_text(
        CONFIG.format(local=LOCAL, smtp=smtp, submission=submission, mda=DISPATCHER, data=DATA,
                      run=RUN)
    )  # fmt: skip
    for domain in (LOCAL, SENDERS):
        (CONF / "domains" / domain).mkdir(parents=True)
    util = ROOT / "usr/bin/chasquid-util"
    users = [USER, *(f"{part}@{LOCAL}" for part in LOCAL_PARTS)]
    for user in users:
        subprocess.run(
            [str(util), f"--configdir={CONF}", "user-add", user, f"--password={PASSWORD}"],
            check=True, capture_output=True,
        )  # fmt: skip
    programs = lda.furnish(RUN / "lda", dovecot_port=0, owner=0)
    lines = [f"{part}) exec {programs[part]} ;;" for part in LOCAL_PARTS]
    forward = RUN / "forward.py"
    forward.write_text(FORWARD.format(host=destination.host, port=destination.capture_port))
    DISPATCHER.write_text(
        DISPATCHER_SCRIPT.format(senders=SENDERS, python=sys.executable, forward=forward,
                                 programs="\n".join(lines))
    )  # fmt: skip
    DISPATCHER.chmod(0o755)
    return smtp, submission


def _submit(port: int, cases: list[Case]) -> None:
    """Each case's message submitted as an application does: STARTTLS, AUTH, one transaction
    each."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("app.sender.test")
        client.starttls(context=context)
        client.ehlo("app.sender.test")
        client.login(USER, PASSWORD)
        for number, case in enumerate(cases, start=1):
            refused = client.sendmail(case.sender, list(case.recipients), message(case, number))
            if refused:
                logger.warning("%s: chasquid refused %s at submission", case.name, refused)


def _queued() -> list[Path]:
    return sorted((DATA / "queue").glob("m:*"))


def _tried(path: Path) -> bool:
    """Whether every pending recipient of a queued message has had its first try (chasquid
    writes the last failure into the file after each)."""
    try:
        text = path.read_text()
    except OSError:
        return True  # sent and removed meanwhile
    for block in re.findall(r"rcpt\s*:?\s*\{(.*?)\}", text, flags=re.S):
        # proto3's text leaves a zero value out: a pending recipient (PENDING is 0) has no
        # status field
        pending = "status" not in block or "PENDING" in block
        if pending and "last_failure_message" not in block:
            return False
    return True


def _backdate(path: Path) -> None:
    """The queued message's creation time moved back :data:`BACKDATE` seconds."""
    text = path.read_text()

    def earlier(found: re.Match[str]) -> str:
        return f"{found.group(1)}{int(found.group(2)) - BACKDATE}"

    moved = re.sub(r"(created_at_ts\s*:?\s*\{\s*seconds\s*:\s*)(\d+)", earlier, text, count=1)
    if moved == text:
        raise RuntimeError(f"no creation time found in {path}")
    path.write_text(moved)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = unpack()
    lda_versions = lda.unpack()
    built = load(MTA)
    script_replies(destination, built)
    smtp, submission = _configure(destination)
    resolv = resolv_conf(RUN / "resolv.conf", DNS_ADDRESS)
    command = [str(CHASQUID), f"-config_dir={CONF}",
               f"-testing__outgoing_smtp_port={destination.port}", "-alsologtostderr"]  # fmt: skip
    # the silent case's MX: a listener on the outgoing port that takes connections (the
    # kernel's backlog) and never greets
    silent = socket.socket()
    silent.bind((SILENT_ADDRESS, destination.port))
    silent.listen(64)
    mounts = [Bind(resolv, "/etc/resolv.conf"), *lda.mounts(RUN / "lda")]
    try:
        with serving(TABLE, DNS_ADDRESS), Namespace(MTA, mounts, grace=2.0) as namespace:
            first = _start(namespace, command, smtp, "first")
            try:
                _submit(submission, built)
                deadline = time.monotonic() + FIRST_TRY
                time.sleep(3.0)
                while time.monotonic() < deadline and not all(map(_tried, _queued())):
                    time.sleep(1.0)
            finally:
                stop(first)
            for path in _queued():
                _backdate(path)
            second = _start(namespace, command, smtp, "second")
            try:
                return collect(destination, built, out, MTA,
                               f"{version} (MDAs: {lda_versions})", TIMEOUT)  # fmt: skip
            finally:
                stop(second)
    finally:
        silent.close()


def _start(
    namespace: Namespace, command: list[str], smtp: int, run: str
) -> subprocess.Popen[bytes]:
    log = (RUN / f"chasquid-{run}.log").open("wb")
    daemon = subprocess.Popen(
        namespace.inside(*command), start_new_session=True, stdout=log, stderr=log
    )
    log.close()
    wait_listening(smtp, "chasquid")
    return daemon
