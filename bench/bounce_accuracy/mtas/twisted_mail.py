"""Twisted's notices (round 34): the relaying mail server of Twisted's ``twisted.mail``
(``twistd mail --relay``), installed from PyPI into a throwaway folder under
``/tmp/mta-twisted`` (never a project dependency).

Twisted's relay as released today (26.10.0) cannot relay on Python 3: ``relay.DomainQueuer``
takes ``len()`` of a ``filter`` object, so every relayed recipient is refused at RCPT with
"451 Requested action aborted: local error in processing" (its log: ``TypeError: object of
type 'filter' has no len()``), and ``relaymanager``'s ``_checkStateMX`` calls
``dict.iteritems``. The notices are therefore made by Twisted 20.3.0, its last release for
Python 2.7, run by CPython 2.7 (``PYTHON2``) as written; its ``twisted/mail/bounce.py``, which
writes every notice, differs from 26.10.0's in formatting only.

The server is ``twistd mail``'s own service (``twisted.mail.tap.makeService``: ESMTP on
127.0.0.1:``PORT``, relaying to a queue under ``/tmp/mta-twisted/run``, a queue check every
second), with one thing replaced: the exchange of a domain. Twisted looks up a domain's MX in
DNS and connects to its port 25; here the scripted remote server's domain and ``sender.test``
(the capture server) are routed to their ports on 127.0.0.1 (``ROUTES``), and any other
domain is looked up as Twisted does. A message Twisted's relayer cannot hand over (any reply
outside 2xx to RCPT or to the end of DATA) goes to ``relaymanager._AttemptManager
.notifyFailure``, which writes the notice with ``bounce.generateBounce`` and queues it for the
sender like any other mail, so the capture server receives it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from .cases import collect, load, script_replies, submit
from .destination import Destination
from .host import stop, wait_listening
from .rows import Row

MTA = "twisted_mail"
ROOT = Path("/tmp/mta-twisted")
SITE = ROOT / "site"  # Twisted 20.3.0 and its dependencies for Python 2.7
RUN = ROOT / "run"
VERSION = "20.3.0"
# The releases of Twisted's dependencies that still run on Python 2.7.
REQUIREMENTS = [f"Twisted=={VERSION}", "Automat==20.2.0", "incremental==21.3.0"]
PYTHON2 = os.environ.get("POSTLINE_PYTHON2", "/root/.pyenv/versions/2.7.18/bin/python2.7")
PORT = 5625  # 2325 + the helper's test port offset (3300)
REMOTE = "medlar.test"
HOSTNAME = "mx.sorrel.test"
TIMEOUT = 60.0  # seconds to wait for the notices once every message is submitted

# The server, in Python 2.7: twistd mail's service with each test domain's exchange routed.
SERVER = '''\
import json, site, sys
site.addsitedir(sys.argv[1])
settings = json.load(open(sys.argv[2]))

from twisted.internet import defer, reactor
from twisted.mail import relaymanager, tap
from twisted.python import log

log.startLogging(sys.stdout)
routes = settings["routes"]


class Exchange(object):
    def __init__(self, name):
        self.name = name


class RoutedExchanges(object):
    """Stands in for DNS: a routed domain is its own exchange; any other is looked up."""

    def __init__(self):
        self.dns = relaymanager.MXCalculator()

    def getMX(self, domain):
        if domain in routes:
            return defer.succeed(Exchange(domain))
        return self.dns.getMX(domain)


config = tap.Options()
config.parseOptions([
    "--relay", settings["queue"], "--esmtp", "--no-pop3", "--hostname", settings["hostname"],
    "--smtp", "tcp:%d:interface=127.0.0.1" % settings["port"],
])
service = tap.makeService(config)
helper = [s for s in service if getattr(s, "call", (None,))[0] is relaymanager._checkState]
manager = helper[0].call[1][0]
manager.mxcalc = RoutedExchanges()
connect = manager._cbExchange


def routed(address, port, factory):
    if address in routes:
        address, port = "127.0.0.1", routes[address]
    return connect(address, port, factory)


manager._cbExchange = routed
service.startService()
reactor.run()
'''


def install() -> None:
    """Twisted and its dependencies for Python 2.7 into ``SITE`` (once)."""
    if (SITE / "twisted").exists():
        return
    subprocess.run(
        [PYTHON2, "-m", "pip", "install", "-q", "--target", str(SITE), *REQUIREMENTS],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip


def _configure(destination: Destination) -> Path:
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    (RUN / "server.py").write_text(SERVER)
    settings = {
        "queue": str(RUN / "queue"),
        "hostname": HOSTNAME,
        "port": PORT,
        "routes": {REMOTE: destination.port, "sender.test": destination.capture_port},
    }
    path = RUN / "settings.json"
    path.write_text(json.dumps(settings))
    return path


def generate(out: Path, destination: Destination) -> list[Row]:
    install()
    built = load(MTA)
    script_replies(destination, built)
    settings = _configure(destination)
    with (RUN / "twisted.log").open("wb") as log:
        server = subprocess.Popen(
            [PYTHON2, str(RUN / "server.py"), str(SITE), str(settings)],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
    try:
        wait_listening(PORT, "Twisted's mail server")
        submit("127.0.0.1", PORT, built)
        time.sleep(1.0)
        return collect(destination, built, out, MTA, VERSION, TIMEOUT)
    finally:
        stop(server)
        shutil.copy(RUN / "twisted.log", out.parent / f"{MTA}.log")
