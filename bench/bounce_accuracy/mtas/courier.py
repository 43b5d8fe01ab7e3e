"""Courier's notices: Debian's courier-mta (with courier-base, courier-authlib and the libraries
the system lacks), unpacked under ``/tmp/mta-courier`` (never installed).

Courier's paths (``/etc/courier``, ``/var/lib/courier``, ``/run/courier``, ``/usr/lib/courier``)
and its user (``courier``) are compiled in. So it runs in a mount and UTS namespace of its own,
held open by a ``sleep`` that the namespace's root starts after laying overlays over the
system's folders: ``/usr`` with the unpacked packages over it (read only), ``/etc``, ``/var``
and ``/run`` each with a writable layer under ``/tmp/mta-courier/run``, where Courier's
settings, a copy of ``passwd`` and ``group`` adding its user, its queue and its sockets live.
The system's files are never changed; every command (``makealiases``, ``authdaemond start``,
``courier start``, ``sendmail``) enters that namespace with ``nsenter``. The namespace's host
name is ``mx.spruce.test``.

Courier is the final destination of ``spruce.test`` (aliases, and the system's users through
authdaemond's PAM module: any other name is an unknown user); its ``esmtproutes`` send
``larch.test`` to the scripted remote server, ``holly.test`` to a port where nothing listens,
``aspen.test`` to a server that never greets and ``sender.test`` (the notices) to the capture
server; anything else goes by DNS (``thistle.test`` has no record: the resolver answers
NXDOMAIN). Mail is handed to it as an application does, with its ``sendmail`` on the command
line: its SMTP server would refuse a local unknown user in the session, with no notice.
Delay warnings after a minute, a queue lifetime of three, retries every 15 s.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from .cases import Case, collect, load, script_replies, submit_locally
from .destination import Destination
from .host import ENV, Namespace, Overlay, identities, without_resolving
from .packages import extract
from .rows import Row

MTA = "courier"
PACKAGES = [
    "courier-mta", "courier-base", "courier-authlib", "courier-authdaemon",
    "courier-authlib-userdb", "libcourier-unicode4", "libidn12", "libgamin0", "libltdl7",
    "libnet-cidr-perl", "libpcre3",
]  # fmt: skip
ROOT = Path("/tmp/mta-courier")
RUN = ROOT / "run"
LOCAL = "spruce.test"
REMOTE = "larch.test"
REFUSED = "holly.test"
SILENT = "aspen.test"
NXDOMAIN = "thistle.test"
ALIASES = {"ilse.tann": f"ilse.t@{REMOTE}", "postmaster": "root"}
COURIER_ID = 64992  # the namespace's ``courier`` user and group (the system has none)
SETTINGS = {
    "me": f"mx.{LOCAL}",
    "defaultdomain": LOCAL,
    "locals": f"localhost\n{LOCAL}",
    "queuetime": "3m",
    "warntime": "1m",
    "retryalpha": "15s",
    "retrybeta": "3",
    "retrygamma": "15s",
    "retrymaxdelta": "1",
    "esmtptimeoutconnect": "5",
    "esmtptimeouthelo": "10",
}
TIMEOUT = 330.0  # seconds to wait for the last notice (the lifetime, 3 minutes, and retries)


def configure(
    destination: Destination,
    root: Path = ROOT,
    run: Path = RUN,
    routes: dict[str, int] | None = None,
) -> None:
    """Courier's settings under ``run`` (its packages unpacked under ``root``); ``routes``
    (domain: port of the harness's host) for its ``esmtproutes``, by default this module's."""
    if run.exists():
        shutil.rmtree(run)
    for folder in ("etc", "etc-work", "var/lib", "var-work", "run/courier/authdaemon",
                   "run-work"):  # fmt: skip
        (run / folder).mkdir(parents=True)
    shutil.copytree(root / "etc/courier", run / "etc/courier", symlinks=True)
    shutil.copytree(root / "var/lib/courier", run / "var/lib/courier", symlinks=True)
    identities(
        run / "etc",
        [f"courier:x:{COURIER_ID}:{COURIER_ID}:Courier:/var/lib/courier:/usr/sbin/nologin"],
        [f"courier:x:{COURIER_ID}:"],
    )
    etc = run / "etc/courier"
    for name, value in SETTINGS.items():
        (etc / name).write_text(value + "\n")
    host = destination.host
    if routes is None:
        routes = {
            REMOTE: destination.port,
            REFUSED: destination.refused_port,
            SILENT: destination.silent_port,
            "sender.test": destination.capture_port,
        }
    (etc / "esmtproutes").write_text(
        "".join(f"{domain}: [{host}],{port}\n" for domain, port in routes.items())
    )
    (etc / "aliases/system").write_text("".join(f"{n}: {to}\n" for n, to in ALIASES.items()))
    # The scripted server offers no STARTTLS; Debian's default would look for it anyway.
    courierd = (etc / "courierd").read_text()
    (etc / "courierd").write_text(courierd.replace("ESMTP_USE_STARTTLS=1", "ESMTP_USE_STARTTLS=0"))
    for tree in (run / "var/lib/courier", run / "run/courier"):
        for path in (tree, *tree.rglob("*")):
            os.chown(path, COURIER_ID, COURIER_ID, follow_symlinks=False)
    for path in (etc, *etc.rglob("*")):
        os.chown(path, 0, COURIER_ID, follow_symlinks=False)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(PACKAGES, ROOT)["courier-mta"]
    built = without_resolving(load(MTA), NXDOMAIN)
    script_replies(destination, built)
    configure(destination)
    return run(destination, built, out, MTA, version)


def run(
    destination: Destination,
    built: list[Case],
    out: Path,
    mta: str,
    version: str,
    root: Path = ROOT,
    folder: Path = RUN,
) -> list[Row]:
    """Courier (unpacked under ``root``, configured under ``folder``) started in its namespace,
    each case handed to its ``sendmail``, the notices collected; stopped on leaving."""
    mounts = [
        Overlay("/usr", lower=root / "usr"),
        *(Overlay(f"/{name}", upper=folder / name) for name in ("etc", "var", "run")),
    ]
    # Courier's daemons leave the holder's process group: on leaving, what 'courier stop'
    # left in the namespace is killed.
    with Namespace(mta, mounts, hostname=f"mx.{LOCAL}", grace=10.0) as namespace:
        try:
            namespace.run("makealiases")
            namespace.run("authdaemond", "start")
            namespace.run("courier", "start")
            sendmail = namespace.inside("/usr/sbin/sendmail")
            for number, case in enumerate(built, start=1):
                submit_locally(sendmail, case, number, lf=True, env=ENV)
            return collect(destination, built, out, mta, version, TIMEOUT)
        finally:
            namespace.run("courier", "stop", check=False)
            namespace.run("authdaemond", "stop", check=False)
