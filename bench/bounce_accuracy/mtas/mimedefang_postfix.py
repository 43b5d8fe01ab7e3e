"""MIMEDefang run for real as a milter behind a receiving Postfix (round 57), and the notices
the sending MTA writes of its answers: this module's Postfix (a second instance of the
system's, ``postfix.configure_sending``, from :data:`CLIENT`), ``mimedefang_exim`` and
``mimedefang_sendmail`` the others.

MIMEDefang 3.3 runs from Debian 12's package (``packages.extract`` into ``/tmp/mta-r57/pkg``
with its Perl dependencies and libmilter, never installed): ``mimedefang-multiplexor`` runs
the package's ``mimedefang.pl`` with a filter of ours (:data:`FILTER`), and the ``mimedefang``
milter talks to it over a UNIX socket. ``mimedefang.pl`` reads ``/etc/mail/mimedefang.pl.conf``
(a fixed path), so the daemons run in a mount namespace of their own where ``/etc`` is seen
through a read-only overlay holding ``mail/`` of ours. The filter answers by the recipient's
domain: ``action_bounce`` with its own text for ``quince.test``, ``action_tempfail`` for
``rowan.test``, ``action_discard`` for ``sorrel.test``; a second ``mimedefang`` milter
(``tamarind.test``) is given a multiplexor socket where nothing listens: MIMEDefang's own
failure. The receiving instance (``/tmp/mta-r57/recv``) has one listener per recipient domain
(:data:`LISTENERS`), each with its milter. Mail that passes is discarded.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import milters_postfix, postfix
from .cases import MIMEDEFANG_CASES, load
from .destination import Destination
from .host import Namespace, Overlay, listening, stop, write_file
from .packages import extract
from .receiver import Receiver, prepared
from .rows import Row

MTA = "mimedefang_postfix"
ROOT = Path("/tmp/mta-r57")
PACKAGES_ROOT = ROOT / "pkg"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 8290  # 2540 + the helper's test port offset (5750): the sending Postfix
CLIENT = "127.57.0.2"  # the sending MTA's address, as the receiving Postfix sees it
SENDING = "hazel.test"
RECEIVING = "quassia.test"
MILTER_PORT = 8300
MILTER_DOWN_PORT = 8301  # its multiplexor socket has nobody listening
# recipient domain: (the receiving instance's listener, its milter's port)
LISTENERS = {
    "quince.test": (8293, MILTER_PORT),
    "rowan.test": (8294, MILTER_PORT),
    "sorrel.test": (8295, MILTER_PORT),
    "tamarind.test": (8296, MILTER_DOWN_PORT),
}
PACKAGES = [
    "mimedefang", "libmilter1.0.1", "libmime-tools-perl", "libio-stringy-perl",
    "libunix-syslog-perl", "libmailtools-perl", "libtimedate-perl", "libconvert-binhex-perl",
    "libnet-dns-perl", "libnet-ip-perl", "libdigest-hmac-perl", "libnetaddr-ip-perl",
]  # fmt: skip
BOUNCE_TEXT = "message contains a prohibited attachment"
TEMPFAIL_TEXT = "message could not be scanned at this time, please try again later"
FILTER = f"""\
# the filter of round 57's harness: an answer by the recipient's domain
sub filter_begin {{
    my ($entity) = @_;
    foreach my $recipient (@Recipients) {{
        if ($recipient =~ /\\@quince\\.test>?$/i) {{
            action_bounce("{BOUNCE_TEXT}");
            return;
        }}
        if ($recipient =~ /\\@rowan\\.test>?$/i) {{
            action_tempfail("{TEMPFAIL_TEXT}");
            return;
        }}
        if ($recipient =~ /\\@sorrel\\.test>?$/i) {{
            action_discard();
            return;
        }}
    }}
}}

sub filter {{
    my ($entity, $fname, $ext, $type) = @_;
    return action_accept();
}}

sub filter_end {{
    my ($entity) = @_;
}}

1;
"""


def prepare() -> dict[str, str]:
    """Fresh folders, MIMEDefang's packages unpacked, its filter and the receiving instance
    configured; each package's version."""
    milters_postfix.fresh(ROOT)
    versions = extract(PACKAGES, PACKAGES_ROOT)
    milters_postfix.configure_receiving(RECV, RECEIVING, LISTENERS)
    mail = RECV / "etc-overlay" / "mail"
    mail.mkdir(parents=True)
    write_file(mail / "mimedefang.pl.conf", "1;\n")
    write_file(mail / "mimedefang-filter", FILTER)
    for spool in ("md-spool", "md-spool-down"):
        (RECV / spool).mkdir()
        shutil.chown(RECV / spool, "nobody", "nogroup")
    return versions


def routes_to() -> dict[str, int]:
    """Each recipient domain of the cases and the receiving instance's port it goes to."""
    return milters_postfix.listener_ports(LISTENERS)


@contextmanager
def _multiplexor(space: Namespace, env: dict[str, str], spool: str) -> Iterator[None]:
    """mimedefang-multiplexor in ``space`` for the spool folder ``spool``, in the foreground,
    once its socket is there."""
    pkg = PACKAGES_ROOT
    socket = RECV / spool / "mx.sock"
    command = [
        f"{pkg}/usr/bin/mimedefang-multiplexor", "-D", "-U", "nobody", "-z", str(RECV / spool),
        "-s", str(socket), "-f", f"{pkg}/usr/bin/mimedefang.pl",
        "-F", "/etc/mail/mimedefang-filter", "-l",
    ]  # fmt: skip
    with (RECV / f"multiplexor-{spool}.out").open("wb") as output:
        daemon = subprocess.Popen(space.inside(*command), env=env, start_new_session=True,
                                  stdout=output, stderr=output)  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not socket.exists():
            if time.monotonic() > deadline:
                raise RuntimeError("mimedefang-multiplexor did not make its socket")
            time.sleep(0.2)
        yield
    finally:
        stop(daemon)


def _daemons(space: Namespace, stack: ExitStack) -> None:
    """The multiplexor and the two milters in ``space``, each stopped on leaving ``stack``.
    ``mimedefang`` waits for its multiplexor's socket when it starts, so tamarind.test's milter
    is started with a multiplexor of its own, stopped once the milter listens: its multiplexor
    is down from the first message on."""
    pkg = PACKAGES_ROOT
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "LD_LIBRARY_PATH": f"{pkg}/usr/lib/x86_64-linux-gnu",
        "PERL5LIB": f"{pkg}/usr/share/perl5:{pkg}/usr/lib/x86_64-linux-gnu/perl5/5.36",
    }
    stack.enter_context(_multiplexor(space, env, "md-spool"))
    for port, spool in ((MILTER_PORT, "md-spool"), (MILTER_DOWN_PORT, "md-spool-down")):
        down = ExitStack()
        if spool == "md-spool-down":
            down.enter_context(_multiplexor(space, env, spool))
        command = [
            f"{pkg}/usr/bin/mimedefang", "-D", "-U", "nobody", "-z", str(RECV / spool),
            "-m", str(RECV / spool / "mx.sock"), "-p", f"inet:{port}@127.0.0.1",
        ]  # fmt: skip
        stack.enter_context(
            listening(space.inside(*command), port, f"mimedefang on {port}",
                      RECV / f"mimedefang-{port}.out", env=env)
        )  # fmt: skip
        down.close()


@contextmanager
def receiving(out: Path, mta: str) -> Iterator[None]:
    """MIMEDefang and the receiving instance, in their namespace, while open; its log is
    copied beside ``out`` on leaving."""
    with ExitStack() as stack:
        space = stack.enter_context(
            Namespace("receiving postfix", [Overlay("/etc", lower=RECV / "etc-overlay")],
                      grace=10.0)
        )  # fmt: skip
        _daemons(space, stack)
        milters_postfix.start_receiving(RECV, space, stack, out, mta)
        yield


def version(versions: dict[str, str]) -> str:
    """MIMEDefang's version, for the rows."""
    return f"mimedefang {versions['mimedefang']}"


RECEIVER = Receiver(MIMEDEFANG_CASES, routes_to, "milter",
                    prepared(prepare, receiving, version), clients=CLIENT)  # fmt: skip


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, MIMEDEFANG_CASES)
    versions = prepare()
    postfix.configure_sending(SEND, SENDING, PORT, destination, routes_to(), client=CLIENT)
    with receiving(out, MTA):
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version(versions))
