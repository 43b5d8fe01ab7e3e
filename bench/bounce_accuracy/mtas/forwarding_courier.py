"""Courier's own notice of a forwarding loop (round 81): Debian's Courier, unpacked as round
22's (``courier.extract`` under ``/tmp/mta-courier``, never installed) and run as round 22's
(``courier.run``, its namespace and overlays), with a run folder of its own (:data:`RUN`), the
final destination of :data:`LOCAL`.

Local accounts (added to the namespace's copy of ``passwd``, homes under :data:`HOMES`; the
authdaemond PAM module finds them) each have a ``.courier`` file that forwards back round
(:data:`DOT_COURIER`): ``lena.co`` to ``mats.co`` and ``mats.co`` back to ``lena.co``;
``ola.co`` to itself. courierlocal adds its ``Delivered-To:`` header at each delivery and, when
the message comes back with it, fails it: "Mail loop - already have my Delivered-To: header."
(its binary's words), in Courier's own notice to the sender (``esmtproutes`` sends
``sender.test`` to the capture server). Local delivery only: no port of its own. The cases are
``forwarding_courier`` in ``forwarding_cases.yaml``.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import courier
from .cases import FORWARDING_CASES, load
from .destination import Destination
from .packages import extract
from .rows import Row

MTA = "forwarding_courier"
ROOT = Path("/tmp/r81-courier")
RUN = ROOT / "run"
HOMES = ROOT / "home"
LOCAL = "sloe-r81.test"
# Each account's .courier file: each forwards back round.
DOT_COURIER = {
    "lena.co": f"mats.co@{LOCAL}\n",
    "mats.co": f"lena.co@{LOCAL}\n",
    "ola.co": f"ola.co@{LOCAL}\n",
}
FIRST_ID = 64981  # the accounts' user ids (and their one group's), ids the system does not use


def _configure(destination: Destination) -> None:
    courier.configure(destination, courier.ROOT, RUN, {"sender.test": destination.capture_port})
    etc = RUN / "etc/courier"
    for name, value in {"me": f"mx.{LOCAL}", "defaultdomain": LOCAL,
                        "locals": f"localhost\n{LOCAL}"}.items():  # fmt: skip
        (etc / name).write_text(value + "\n")
    (etc / "aliases/system").write_text("postmaster: root\n")
    users = []
    for number, (name, text) in enumerate(DOT_COURIER.items()):
        uid, home = FIRST_ID + number, HOMES / name
        (home / "Maildir").mkdir(parents=True, exist_ok=True)
        for sub in ("cur", "new", "tmp"):
            (home / "Maildir" / sub).mkdir(exist_ok=True)
        (home / ".courier").write_text(text)
        for path in (home, *home.rglob("*")):
            os.chown(path, uid, FIRST_ID)
            path.chmod(0o700 if path.is_dir() else 0o644)
        users.append(f"{name}:x:{uid}:{FIRST_ID}:{name}:{home}:/usr/sbin/nologin\n")
    with (RUN / "etc/passwd").open("a") as passwd:
        passwd.write("".join(users))
    with (RUN / "etc/group").open("a") as group:
        group.write(f"r81loop:x:{FIRST_ID}:\n")


def generate(out: Path, destination: Destination) -> list[Row]:
    version = extract(courier.PACKAGES, courier.ROOT)["courier-mta"]
    built = load(MTA, FORWARDING_CASES)
    _configure(destination)
    return courier.run(destination, built, out, MTA, version, courier.ROOT, RUN)
