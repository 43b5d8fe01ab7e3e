"""Haraka's notices (round 33): Haraka, the Node.js MTA, installed from the npm registry at a
pinned version (``VERSION``) with ``npm install`` into ``/tmp/mta-haraka/pkg`` (never into the
repository, never globally), run in the foreground with a folder of its own (``haraka -c
/tmp/mta-haraka/run``: its ``config``, ``plugins`` and ``queue``).

Haraka takes the cases' mail on 127.0.0.1:``PORT`` and relays it with its outbound queue: a
plugin of the run's own (``bench_routes``) lets loopback relay and answers Haraka's
``get_mx`` hook with the harness's servers, so ``mulberry.test`` goes to the scripted remote
server, ``medlar.test`` to a port where nothing listens, ``tamarack.test`` to a server that
never greets, ``sorb.test`` (Haraka's own mailbox domain, as a Haraka in front of a mailbox
server is set up) over LMTP to a scripted LMTP server, ``sender.test`` (the notices) to the
capture server; any other domain goes by DNS (``olive-nx.test`` has no record: NXDOMAIN).
Every notice is Haraka's own (its ``outbound.bounce_message`` template and delivery-status
part, as the package ships them). Haraka sends no delay warnings; temporary failures are
retried every 5 s four times (``temp_fail_intervals``) before the notice.

A case with ``later`` replies is answered those once Haraka's log shows its first try
deferred (a temporary reply, then a permanent one).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from functools import partial
from pathlib import Path

from .cases import Case, collect, load, script_replies, submit
from .destination import Destination
from .host import ENV, alongside, listening, without_resolving
from .lmtp import ScriptedLMTP
from .rows import Row

MTA = "haraka"
VERSION = "3.3.4"
ROOT = Path("/tmp/mta-haraka")
PKG = ROOT / "pkg"
RUN = ROOT / "run"
HARAKA = PKG / "node_modules/Haraka/bin/haraka"
PORT = 5633  # 2533 + the helper's test port offset (3100)
LMTP_PORT = 5634  # 2534 + the same offset
ME = "mx.sorb.test"
REMOTE = "mulberry.test"
REFUSED = "medlar.test"
SILENT = "tamarack.test"
MAILBOXES = "sorb.test"
NXDOMAIN = "olive-nx.test"
RETRIES = "5s*4"  # temp_fail_intervals: a try, four retries 5 s apart, then the notice
TIMEOUT = 180.0  # seconds to wait for the last notice

OUTBOUND = """\
enable_tls=false
temp_fail_intervals={retries}
connect_timeout=5
received_header=Haraka outbound
"""

SMTP = """\
listen=127.0.0.1:{port}
daemonize=false
"""

PLUGIN = """\
// Round 33's harness (bench/bounce_accuracy/mtas/haraka.py): loopback may relay, and the
// harness's servers stand in for the MX of its domains; other domains go by DNS.
const ROUTES = {routes}

exports.hook_connect = function (next, connection) {{
    if (connection.remote.ip === '127.0.0.1') connection.relaying = true
    next()
}}

exports.hook_get_mx = function (next, hmail, domain) {{
    const route = ROUTES[domain.toLowerCase()]
    if (!route) return next()
    next(OK, route)
}}
"""


def install(pkg: Path = PKG) -> str:
    """Haraka ``VERSION`` from the npm registry under ``pkg`` (once); its version."""
    manifest = pkg / "node_modules/Haraka/package.json"
    if not manifest.exists() or json.loads(manifest.read_text())["version"] != VERSION:
        pkg.mkdir(parents=True, exist_ok=True)
        (pkg / "package.json").write_text('{"name": "haraka-bench", "private": true}\n')
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts",
             f"Haraka@{VERSION}"],
            cwd=pkg, check=True, capture_output=True, timeout=600,
        )  # fmt: skip
    found: str = json.loads(manifest.read_text())["version"]
    return found


def _configure(destination: Destination, lmtp: ScriptedLMTP) -> None:
    host = destination.host
    routes = {
        REMOTE: {"exchange": host, "port": destination.port, "priority": 10},
        REFUSED: {"exchange": host, "port": destination.refused_port, "priority": 10},
        SILENT: {"exchange": host, "port": destination.silent_port, "priority": 10},
        MAILBOXES: {"exchange": host, "port": lmtp.port, "priority": 10, "using_lmtp": True},
        "sender.test": {"exchange": host, "port": destination.capture_port, "priority": 10},
    }
    configure(routes)


def configure(
    routes: dict[str, dict[str, object]], pkg: Path = PKG, run: Path = RUN, port: int = PORT
) -> None:
    """Haraka's folder ``run`` (the package's configuration from ``pkg``, then the run's
    files): listening on ``port``, ``routes`` (domain: the MX its ``get_mx`` hook answers)."""
    if run.exists():
        shutil.rmtree(run)
    config = run / "config"
    # the package's own configuration (its bounce template among it), then the run's files
    shutil.copytree(pkg / "node_modules/Haraka/config", config)
    for folder in (run / "plugins", run / "queue"):
        folder.mkdir(parents=True)
    (config / "me").write_text(ME + "\n")
    (config / "smtp.ini").write_text(SMTP.format(port=port))
    (config / "outbound.ini").write_text(OUTBOUND.format(retries=RETRIES))
    (config / "log.ini").write_text("[main]\nlevel=info\ntimestamps=true\n")
    (config / "plugins").write_text("bench_routes\n")
    (run / "plugins" / "bench_routes.js").write_text(
        PLUGIN.format(routes=json.dumps(routes, indent=4))
    )


def _script_later(
    cases: list[Case], destination: Destination, log: Path, stop: threading.Event
) -> None:
    """Script each ``later`` reply once Haraka's log shows that recipient's first try
    deferred."""
    waiting = {a.lower(): r for c in cases for a, r in c.later.items()}
    while waiting and not stop.wait(0.2):
        text = log.read_text("utf-8", "replace").lower() if log.exists() else ""
        for line in text.splitlines():
            if "deferred" not in line:
                continue
            for address in [a for a in waiting if a in line]:
                destination.script(address, waiting.pop(address))


def generate(out: Path, destination: Destination) -> list[Row]:
    version = install()
    built = without_resolving(load(MTA), NXDOMAIN)
    script_replies(destination, built)
    log = RUN / "haraka.log"
    with ScriptedLMTP(destination, f"mx.{MAILBOXES}", LMTP_PORT) as lmtp:
        _configure(destination, lmtp)
        command = ["node", str(HARAKA), "-c", str(RUN)]
        try:
            with (
                listening(command, PORT, "Haraka", log, env={**ENV, "HOME": str(RUN)}),
                alongside(partial(_script_later, built, destination, log)),
            ):
                submit(destination.host, PORT, built)
                return collect(destination, built, out, MTA, version, TIMEOUT)
        finally:
            if log.exists():
                shutil.copy(log, out.parent / f"{MTA}.log")
