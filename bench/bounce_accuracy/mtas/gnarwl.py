"""An LDAP-based vacation responder's replies (round 58): gnarwl 3.6 (Debian 12's ``gnarwl``
``3.6.dfsg-13+b1``, GPL-2: only run) reading its users' vacation settings from OpenLDAP's
``slapd`` 2.5.13 (Debian 12's ``slapd`` ``2.5.13+dfsg-5``), both unpacked under
``/tmp/mta-gnarwl/root`` with the two libraries slapd needs (:data:`PACKAGES`; never
installed). slapd runs on ``127.58.0.1`` from a ``slapd.conf`` of ours (an ``mdb`` database
filled with ``slapadd``: :data:`USERS`; the vacation attributes gnarwl's configuration
template names in a small schema of ours, :data:`SCHEMA`). gnarwl's configuration is its
template with the server, the base and the folders changed, its ``mta`` a script of ours that
hands the reply over SMTP to the capture server. Each case's message is handed to gnarwl as
an MTA's delivery to it does (on its standard input, ``-a <recipient> -s <sender>``). The
cases are ``gnarwl`` in ``gnarwl_cases.yaml``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from .cases import collect, load, message
from .destination import Destination
from .packages import extract
from .rows import Row

MTA = "gnarwl"
PACKAGES = ["gnarwl", "slapd", "libltdl7", "libodbc2"]
ROOT = Path("/tmp/mta-gnarwl")
RUN = ROOT / "run"
HOST = "127.58.0.1"
PORT = 8389  # 2589 + the helper's test port offset (5800)
BASE = "dc=hazel,dc=test"
TIMEOUT = 30.0
SCHEMA = """\
attributetype ( 1.3.6.1.3.5858.1 NAME 'vacationActive' EQUALITY booleanMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.7 SINGLE-VALUE )
attributetype ( 1.3.6.1.3.5858.2 NAME 'vacationInfo' EQUALITY caseExactMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.3.5858.3 NAME 'vacationStart' EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.3.5858.4 NAME 'vacationEnd' EQUALITY caseIgnoreMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )
attributetype ( 1.3.6.1.3.5858.5 NAME 'vacationForward' EQUALITY caseIgnoreIA5Match
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.26 )
objectclass ( 1.3.6.1.3.5858.10 NAME 'benchVacation' SUP top AUXILIARY
  MAY ( vacationActive $ vacationInfo $ vacationStart $ vacationEnd $ vacationForward ) )
"""
SLAPD_CONF = """\
include {root}/etc/ldap/schema/core.schema
include {root}/etc/ldap/schema/cosine.schema
include {root}/etc/ldap/schema/inetorgperson.schema
include {run}/vacation.schema
modulepath {root}/usr/lib/ldap
moduleload back_mdb
pidfile {run}/slapd.pid
database mdb
suffix "{base}"
rootdn "cn=admin,{base}"
rootpw bench
directory {run}/db
"""
# Each user: uid, full name, vacation text (gnarwl fills $end from vacationEnd).
USERS = {
    "rita": ("Rita Moreno", "Hello, I am on vacation until $end and read no mail until then."),
    "omar": ("Omar Haddad", "Guten Tag, ich bin bis $end nicht im Büro und lese keine E-Mails."),
}
SENDMAIL_SCRIPT = """\
#!/usr/bin/python3
import smtplib, sys
raw = sys.stdin.buffer.read().replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
with smtplib.SMTP("{host}", {port}, timeout=30) as client:
    client.sendmail("", sys.argv[1:], raw)
"""


def _ldif() -> str:
    entries = [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: hazel\no: Hazel\n"
    ]
    for uid, (name, text) in USERS.items():
        entries.append(
            f"dn: uid={uid},{BASE}\nobjectClass: inetOrgPerson\nobjectClass: benchVacation\n"
            f"uid: {uid}\ncn: {name}\nsn: {name.split()[-1]}\nmail: {uid}@hazel.test\n"
            f"vacationActive: TRUE\nvacationInfo: {text}\nvacationStart: 1 December\n"
            "vacationEnd: 4 January\n"
        )
    return "\n".join(entries)


def _configure(destination: Destination) -> dict[str, str]:
    if RUN.exists():
        shutil.rmtree(RUN)
    for folder in ("db", "block"):
        (RUN / folder).mkdir(parents=True)
    (RUN / "vacation.schema").write_text(SCHEMA)
    (RUN / "slapd.conf").write_text(SLAPD_CONF.format(root=ROOT / "root", run=RUN, base=BASE))
    (RUN / "data.ldif").write_text(_ldif(), encoding="utf-8")
    sendmail = RUN / "sendmail"
    sendmail.write_text(
        SENDMAIL_SCRIPT.format(host=destination.host, port=destination.capture_port)
    )
    sendmail.chmod(0o755)
    lib = ROOT / "root/var/lib/gnarwl"
    config = (ROOT / "root/usr/share/gnarwl/gnarwl.cfg.template").read_text()
    for old, new in (
        ("server localhost", f"server {HOST}"),
        ("port 389", f"port {PORT}"),
        ("protocol 0", "protocol 3"),
        ("base o=my_organization", f"base {BASE}"),
        ("/var/lib/gnarwl/block/", f"{RUN}/block/"),
        ("/var/lib/gnarwl/", f"{lib}/"),
        ("mta /usr/sbin/sendmail -F $recepient", f"mta {sendmail} $sender"),
    ):
        config = config.replace(old, new)
    (RUN / "gnarwl.cfg").write_text(config)
    return {**os.environ, "LD_LIBRARY_PATH": str(ROOT / "root/usr/lib/x86_64-linux-gnu")}


def generate(out: Path, destination: Destination) -> list[Row]:
    versions = extract(PACKAGES, ROOT / "root")
    built = load(MTA)
    env = _configure(destination)
    slapd = ROOT / "root/usr/sbin/slapd"
    subprocess.run([str(ROOT / "root/usr/sbin/slapadd"), "-f", str(RUN / "slapd.conf"), "-l",
                    str(RUN / "data.ldif")], env=env, check=True, capture_output=True)  # fmt: skip
    server = subprocess.Popen(
        [str(slapd), "-f", str(RUN / "slapd.conf"), "-h", f"ldap://{HOST}:{PORT}/", "-d", "0"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)
        for number, case in enumerate(built, start=1):
            raw = message(case, number).replace(b"\r\n", b"\n")
            command = [str(ROOT / "root/usr/bin/gnarwl"), "-c", str(RUN / "gnarwl.cfg"),
                       "-a", case.recipients[0], "-s", case.sender]  # fmt: skip
            subprocess.run(command, input=raw, env=env, check=True, capture_output=True, timeout=30)
        version = f"gnarwl {versions['gnarwl']} (slapd {versions['slapd']})"
        return collect(destination, built, out, MTA, version, TIMEOUT)
    finally:
        server.terminate()
        server.wait(timeout=10)
