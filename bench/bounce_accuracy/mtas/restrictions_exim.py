"""Exim's notices of what a receiving Postfix's own restrictions and limits answered (round
60): the receiving side of ``restrictions_postfix`` with Debian's Exim, unpacked and run as
round 21's (``exim.unpack``, ``exim.configure_empty``, ``exim.run``) under
``/tmp/mta-r60/exim``, as the sending MTA: each recipient domain goes to the receiving
instance's listener from :data:`restrictions_postfix.CLIENT` (the transport's ``interface``),
``sender.test`` to the capture server. Delay warning after 20 s, retries given up after 60 s
(``exim.MAIN``, ``exim.RETRY``). The cases are ``restrictions_exim`` in
``restriction_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim, restrictions_postfix
from .cases import RESTRICTION_CASES, load, script_replies
from .destination import Destination
from .exim import Route
from .rows import Row

MTA = "restrictions_exim"
ROOT = restrictions_postfix.ROOT / "exim"
PORT = 18641  # 2641 + the helper's test port offset (16000)
LOCAL = "tarragon-e.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, RESTRICTION_CASES)
    script_replies(destination, built)
    restrictions_postfix.prepare(destination)
    version = exim.unpack(ROOT)
    source = (f"interface = {restrictions_postfix.CLIENT}",)
    routes = [Route("capture", "sender.test", destination.capture_port)]
    routes += [
        Route(f"restricted{number}", domain, port, source)
        for number, (domain, port) in enumerate(restrictions_postfix.routes_to().items())
    ]
    config = exim.configure_empty(ROOT, LOCAL, PORT, routes)
    with restrictions_postfix.receiving(out, MTA):
        return exim.run(ROOT, PORT, config, destination, built, out, MTA,
                        f"exim4-{version}; {restrictions_postfix.version()}")  # fmt: skip
