"""dma's notices of DNS failures of the recipient's domain (round 44): round 21b's dma 0.13,
unpacked under ``/tmp/mta-dns/dma``, run as ``dma.py`` runs it (``dma -D``, its compiled-in
``/etc/dma/dma.conf`` laid over ``/etc`` in a mount namespace of its own), but with no smart
host: it looks up each recipient's domain itself, by the DNS server of the harness's own
(``dnsserver.py``) on an address of its own, :data:`ADDRESS`, named by a private
``resolv.conf`` in that ``/etc`` layer.

Its notices go to the sender's domain by DNS too, on port 25 (dma's ``PORT`` is its smart
host's only): in this module's table ``sender.test`` has the address :data:`RELAY`, where a
forwarder of the harness's passes port 25 on to the capture server. dma retries a temporary failure
itself, minutes apart and for days (compiled in, not to be shortened): a case it defers is
given up after :data:`TRY` seconds (its ``dma -D`` stopped) and makes no notice. The cases are
``dns_dma`` in ``dns_cases.yaml``.
"""

from __future__ import annotations

import logging
import socket
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from . import dma
from .cases import DNS_CASES, collect, load, submit_locally
from .destination import Destination
from .dns_opensmtpd import TABLE
from .dnsserver import Name, Table, resolv_conf, serving
from .host import Overlay, isolated
from .packages import extract
from .rows import Row

logger = logging.getLogger(__name__)

MTA = "dns_dma"
ROOT = Path("/tmp/mta-dns/dma")
RUN = ROOT / "run"
LOCAL = "vervain.test"
ADDRESS = "127.0.0.47"  # the DNS server's, an address of its own (so the modules can run at once)
RELAY = "127.0.0.48"  # sender.test's address here: port 25 forwarded to the capture server
TRY = 20.0  # seconds a case's ``dma -D`` may run (a deferred one would sleep for minutes)
TIMEOUT = 30.0  # seconds to wait for the notices once every case was handed over

CONF = """\
MAILNAME {local}
ALIASES {run}/aliases
SPOOLDIR {run}/spool
"""


def _configure(destination: Destination) -> None:
    dma.write_run(RUN, {"postmaster": "root"}, CONF.format(local=LOCAL, run=RUN))
    resolv_conf(RUN / "etc/resolv.conf", ADDRESS)  # the /etc layer's, over the system's


class _Forward(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        target = self.server.target  # type: ignore[attr-defined]
        with socket.create_connection(target, timeout=30) as upstream:
            down = threading.Thread(target=_pipe, args=(upstream, self.request), daemon=True)
            down.start()
            _pipe(self.request, upstream)
            down.join()


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
        sink.shutdown(socket.SHUT_WR)
    except OSError:
        pass


class _Forwarder(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


@contextmanager
def forwarding(address: str, port: int, target: tuple[str, int]) -> Iterator[None]:
    """Connections to ``address``:``port`` passed on to ``target`` while open."""
    server = _Forwarder((address, port), _Forward)
    server.target = target  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(dma.PACKAGES, ROOT)["dma"]
    built = load(MTA, DNS_CASES)
    _configure(destination)
    command = isolated([str(ROOT / "usr/sbin/dma"), "-D"], [Overlay("/etc", upper=RUN / "etc")])
    table = Table({**TABLE.names, "sender.test": Name((("A", RELAY),))})
    capture = (destination.host, destination.capture_port)
    with serving(table, ADDRESS), forwarding(RELAY, 25, capture):
        for number, case in enumerate(built, start=1):
            try:
                submit_locally(command, case, number, timeout=TRY)
            except subprocess.TimeoutExpired:
                logger.warning("%s: dma still at it after %s s (deferred): stopped", case.name, TRY)
        return collect(destination, built, out, MTA, version, TIMEOUT)
