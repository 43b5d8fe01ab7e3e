"""Sendmail's notices of its own failures that are no reply of the remote server (round 40):
round 21b's unpacked Sendmail run as round 21b's (``sendmail.configure``, ``sendmail.run``)
with a folder of its own, ``/tmp/mta-own/sendmail-run``, final destination of ``aspen.test``.

Besides round 21b's mailer table (``maple.test`` to the scripted server), ``spruce.test`` is
sent to the daemon's own port (its greeting names the daemon's own host name: "mail loops back
to me (MX problem?)") and ``yew.test`` to a host name with no DNS record; a message carrying
more Received: headers than Sendmail's hop limit is a suspected loop. The cases are
``own_sendmail`` in ``own_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import sendmail
from .cases import OWN_CASES, load, script_replies
from .destination import Destination
from .rows import Row

MTA = "own_sendmail"
RUN = Path("/tmp/mta-own/sendmail-run")
PORT = 7229  # 2529 + the helper's test port offset (4700)
LOCAL = "aspen.test"


def generate(out: Path, destination: Destination) -> list[Row]:
    version = sendmail.unpacked()
    built = load(MTA, OWN_CASES)
    script_replies(destination, built)
    extra = {"spruce.test": ("127.0.0.1", PORT), "yew.test": ("mx1.cedar-nx.test", 25)}
    aliases = {"postmaster": "root"}
    sendmail.configure(destination, RUN, LOCAL, PORT, aliases, sendmail.BESIDE, extra)
    return sendmail.run(destination, built, out, MTA, version, RUN, LOCAL, PORT)
