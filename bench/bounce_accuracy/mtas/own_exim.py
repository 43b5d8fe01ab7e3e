"""Exim's notices of its own failures that are no reply of the remote server (round 40):
Debian's Exim unpacked and run as round 21's (``exim.unpack``, ``exim.configure``,
``exim.run``) under ``/tmp/mta-own/exim``, final destination of ``poplar.test``.

``maple.test`` is routed to 127.0.0.1, an address of the host itself, by a router that fails
such a route (``self = fail``: "remote host address is the local host"); ``oak.test`` to the
scripted server by a transport that requires TLS (``hosts_require_tls``; the server offers
none); ``willow.test`` to a host name with no DNS record (``host_find_failed = fail``);
``hazel.test`` to the scripted server (authentication required, a malformed address) and
``sender.test`` to the capture server. The cases are ``own_exim`` in ``own_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim
from .cases import OWN_CASES, load, script_replies
from .destination import Destination
from .exim import Route
from .rows import Row

MTA = "own_exim"
ROOT = Path("/tmp/mta-own/exim")
PORT = 7227  # 2527 + the helper's test port offset (4700)
LOCAL = "poplar.test"

ROUTERS = """\
loops_back:
  driver = manualroute
  domains = maple.test
  transport = remote_smtp
  route_list = * 127.0.0.1
  self = fail

no_such_host:
  driver = manualroute
  domains = willow.test
  transport = remote_smtp
  route_list = * mx1.cedar-nx.test byname
  host_find_failed = fail

"""


def _configure(destination: Destination) -> Path:
    routes = [
        Route("capture", "sender.test", destination.capture_port),
        Route("remote", "hazel.test", destination.port),
        Route("tls", "oak.test", destination.port, ("hosts_require_tls = *",)),
    ]
    return exim.configure_empty(ROOT, LOCAL, PORT, routes, ROUTERS)


def generate(out: Path, destination: Destination) -> list[Row]:
    version = exim.unpack(ROOT)
    built = load(MTA, OWN_CASES)
    script_replies(destination, built)
    config = _configure(destination)
    return exim.run(ROOT, PORT, config, destination, built, out, MTA, version)
