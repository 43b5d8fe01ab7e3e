"""XMail's notices (round 43): XMail 1.27 (Davide Libenzi's mail server, GPL-2), built from the
public repository GerHobbelt/xmail at commit :data:`COMMIT` ("xmail-1.27", the original
release as imported there; the repository's newer commits do not build) under
``/tmp/mta-xmail`` and run on loopback with a MailRoot of its own. Nothing of XMail enters this
repository: it is built and run here only to make notices. The snapshot is read from
:data:`MIRROR` (a local git copy of that repository; ``git archive``).

The build is its Makefile.lnx with flags only (``-fpermissive -std=gnu++98``), and one change
GCC 12 needs and flags cannot give: ``TabIndex.cpp`` compares a pointer with ``< 0``, an error
since GCC 11; :data:`PATCH` makes it ``== NULL`` in the copy under /tmp (the function never
returns NULL, so the test was always false and stays so).

XMail runs in the foreground (``-Md``), its SMTP server on 127.0.0.1:``PORT`` and every other
server off, in a mount namespace where a private ``/etc/resolv.conf`` names the harness's DNS
server (``dnsserver.py``, on :data:`DNS`, an address of its own); XMail asks that server for MX
records itself (``SmartDNSHost``) and the system's resolver for addresses. ``smtpfwd.tab``
sends ``aspen.test`` to the scripted remote server, ``elm.test`` to a port where nothing
listens, ``ash.test`` to a server that never greets, ``fir.test`` to a server of this module
whose EHLO announces ``SIZE 10000`` and ``sender.test`` (the notices) to the capture server;
the DNS cases' domains go by DNS (:data:`TABLE`). ``larch.test`` is its own domain (two users:
one with a quota, one whose ``mailproc.tab`` redirects to ``aspen.test``).
Retries every 10 s, 3 tries at most (``-Qt 10 -Qi 0 -Qr 3``); a notice of a temporary failure
after the first try (``NotifyTryPattern`` 1): XMail's delay notice. The mail is handed to
XMail's own ``sendmail`` (its local spool), as an application on the host does: its SMTP
server would refuse a local unknown user at RCPT, and give no notice.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from aiosmtpd.controller import Controller

from .cases import collect, load, script_replies, submit_locally
from .destination import Destination
from .dnsserver import Name, Table, resolv_conf, serving
from .host import ENV, Bind, isolated, listening
from .packages import unpack_commit
from .rows import Row

MTA = "xmail"
MIRROR = Path("/work/.mirror/GerHobbelt+xmail/repo")
COMMIT = "14b8fe39f80bec911b6764121425ed3d546f1e7c"  # "xmail-1.27" (2010-06-07)
VERSION = "1.27"
ROOT = Path("/tmp/mta-xmail")
SOURCE = ROOT / "src/xmail"
RUN = ROOT / "run"
MAIL_ROOT = RUN / "MailRoot"
PORT = 6825  # 2525 + the helper's test port offset (4300)
SMALL_PORT = 6826  # 2526 + the offset: a next hop that announces SIZE 10000
SMALL_LIMIT = 10000
DNS = "127.0.0.143"  # the DNS server's address (port 53), none other module's
LOCAL = "larch.test"
REMOTE = "aspen.test"
REFUSED = "elm.test"
SILENT = "ash.test"
SMALL = "fir.test"  # to the next hop that takes 10,000 bytes at most
QUOTA_USER = "sofia.kramer"  # MaxMBSize 1 (KB), a message of 2 KB already in the mailbox
FORWARD_USER = "paul.weber"  # mailproc.tab: redirect to paul.w@aspen.test
FORWARD_TO = f"paul.w@{REMOTE}"
RETRY = ["-Qt", "10", "-Qi", "0", "-Qr", "3"]  # a try every 10 s, 3 at most
# seconds to wait for the last notice: 3 tries 10 s apart, each of the silent server's taking
# XMail's fixed 90 s wait for a greeting
TIMEOUT = 360.0
# The MailRoot's folders (its Readme's "MailRoot structure"; git keeps no empty folder).
FOLDERS = (
    "bin", "cmdaliases", "tabindex", "dnscache/mx", "dnscache/ns", "custdomains", "filters",
    "logs", "pop3locks", "pop3linklocks", "pop3links", "spool/local", "spool/temp",
    "userauth/pop3", "userauth/smtp", "msgsync",
)  # fmt: skip
CFLAGS = "-O1 -fpermissive -w -std=gnu++98"
PATCH = (
    "TabIndex.cpp",
    "TbixGetIndexFile(pszTabFilePath, piFieldsIdx, szIdxFile) < 0",
    "TbixGetIndexFile(pszTabFilePath, piFieldsIdx, szIdxFile) == NULL",
)

# What the DNS server answers for the DNS cases' domains (names carry no word of the failure);
# any other name is NXDOMAIN (sorrel.test: the domain does not exist).
TABLE = Table(
    {
        "juniper.test": Name((("MX", "10 mx1.juniper.test"),)),  # mx1.juniper.test: NXDOMAIN
        "laurel.test": Name(),  # the name exists, no MX, no A, no AAAA (NODATA)
    }
)

SERVER_TAB = {
    "RootDomain": LOCAL,
    "SmtpServerDomain": LOCAL,
    "POP3Domain": LOCAL,
    "HeloDomain": f"mx.{LOCAL}",
    "PostMaster": f"root@{LOCAL}",
    "ErrorsAdmin": "",  # notices to the sender only
    "TempErrorsAdmin": "",
    "NotifyTryPattern": "1",  # a notice of a temporary failure after the first try
    "RemoveSpoolErrors": "1",
    "MaxMTAOps": "16",
    "ReceivedHdrType": "0",
    "FetchHdrTags": "+X-Deliver-To,+Received,To,Cc",
    "DefaultSmtpPerms": "MRVZ",
    "SmartDNSHost": f"{DNS}:udp",
}


def build(root: Path = ROOT) -> Path:
    """XMail's binaries under ``<root>/src/xmail/bin``, from the snapshot at :data:`COMMIT`
    (once: a build of that commit already there is kept); that source folder."""
    source = root / SOURCE.relative_to(ROOT)
    stamp = root / "built"
    if stamp.exists() and stamp.read_text() == COMMIT and (source / "bin/XMail").exists():
        return source
    unpack_commit(MIRROR, COMMIT, root / "src")
    name, old, new = PATCH
    patched = source / name
    patched.write_text(patched.read_text("latin-1").replace(old, new), "latin-1")
    (source / "bin").mkdir(exist_ok=True)
    env = {**ENV, "CFLAGS": CFLAGS}
    make = ["make", "-f", "Makefile.lnx"]
    # SysMachine.h is made first: the parallel build does not wait for it.
    subprocess.run([*make, "SysMachine.h"], cwd=source, env=env, check=True, capture_output=True)
    subprocess.run([*make, "-j8"], cwd=source, env=env, check=True, capture_output=True)
    stamp.write_text(COMMIT)
    return source


def tab(*rows: tuple[str, ...]) -> str:
    return "".join("\t".join(f'"{v}"' for v in row) + "\n" for row in rows)


def lay_mail_root(source: Path, mail_root: Path) -> None:
    """A fresh MailRoot at ``mail_root``: the stock one of the build at ``source``, its sample
    domain removed, the folders git does not keep made."""
    if mail_root.exists():
        shutil.rmtree(mail_root)
    shutil.copytree(source / "MailRoot", mail_root)
    shutil.rmtree(mail_root / "domains/xmailserver.test")
    for folder in FOLDERS:
        (mail_root / folder).mkdir(parents=True, exist_ok=True)


def command(source: Path, mail_root: Path, addresses: Sequence[str]) -> list[str]:
    """XMail in the foreground with ``mail_root``, its SMTP server on each of ``addresses``
    (``ip:port``), every other server off, its SMTP and queue logs on."""
    listen = [arg for address in addresses for arg in ("-SI", address)]
    servers_off = ["-P-", "-B-", "-X-", "-C-", "-W-", "-F-", "-Y-"]
    logs = ["-Sl", "-Ql", "-Lt", "2"]
    return [str(source / "bin/XMail"), "-Md", "-Ms", str(mail_root), *listen, *servers_off,
            *logs, *RETRY]  # fmt: skip


def _configure(destination: Destination) -> None:
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    lay_mail_root(SOURCE, MAIL_ROOT)
    (MAIL_ROOT / "server.tab").write_text(tab(*SERVER_TAB.items()))
    (MAIL_ROOT / "domains.tab").write_text(tab((LOCAL,)))
    host = destination.host
    (MAIL_ROOT / "smtpfwd.tab").write_text(
        tab(
            (REMOTE, f"{host}:{destination.port}"),
            (REFUSED, f"{host}:{destination.refused_port}"),
            (SILENT, f"{host}:{destination.silent_port}"),
            (SMALL, f"{host}:{SMALL_PORT}"),
            ("sender.test", f"{host}:{destination.capture_port}"),
        )
    )
    (MAIL_ROOT / "smtpgw.tab").write_text("")
    (MAIL_ROOT / "aliases.tab").write_text(tab((LOCAL, "postmaster", "root")))
    users = [("root", 1, ""), (QUOTA_USER, 2, "1"), (FORWARD_USER, 3, "")]
    (MAIL_ROOT / "mailusers.tab").write_text(
        tab(*((LOCAL, name, "1d08040c09", str(uid), name, "U") for name, uid, _ in users))
    )
    for name, _, quota in users:
        home = MAIL_ROOT / "domains" / LOCAL / name
        for folder in ("tmp", "new", "cur"):
            (home / "Maildir" / folder).mkdir(parents=True)
        (home / "user.tab").write_text(tab(("RealName", name), ("MaxMBSize", quota or "0")))
    # XMail refuses a delivery when the mailbox is already at its quota (the new message's size
    # is not counted): the quota user's mailbox holds an older message over it.
    (MAIL_ROOT / "domains" / LOCAL / QUOTA_USER / "Maildir/cur/1.older:2,S").write_text(
        "Subject: older\n\n" + "x" * 2048 + "\n"
    )
    (MAIL_ROOT / "domains" / LOCAL / FORWARD_USER / "mailproc.tab").write_text(
        tab(("redirect", FORWARD_TO))
    )


class _Accept:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 2.0.0 Ok: queued"


@contextmanager
def _small_next_hop() -> Iterator[None]:
    """An SMTP server on 127.0.0.1:SMALL_PORT whose EHLO announces ``SIZE 10000``: XMail's own
    client refuses to send it a bigger message (no server refuses anything)."""
    controller = Controller(
        _Accept(), hostname="127.0.0.1", port=SMALL_PORT,
        server_kwargs={"data_size_limit": SMALL_LIMIT},
    )  # fmt: skip
    controller.start()
    try:
        yield
    finally:
        controller.stop()


def generate(out: Path, destination: Destination) -> list[Row]:
    build()
    built = load(MTA)
    script_replies(destination, built)
    _configure(destination)
    resolv = resolv_conf(RUN / "resolv.conf", DNS)
    env = {**ENV, "MAIL_ROOT": str(MAIL_ROOT), "XMAIL_PID_DIR": str(RUN)}
    daemon = isolated(
        command(SOURCE, MAIL_ROOT, [f"127.0.0.1:{PORT}"]), [Bind(resolv, "/etc/resolv.conf")]
    )
    sendmail = [str(SOURCE / "bin/sendmail")]
    with (
        serving(TABLE, DNS),
        _small_next_hop(),
        listening(daemon, PORT, "XMail", RUN / "xmail.log", env),
    ):
        for number, case in enumerate(built, start=1):
            submit_locally(sendmail, case, number, env=env)
        return collect(destination, built, out, MTA, VERSION, TIMEOUT)
