"""mailfromd as a milter behind a receiving Postfix (round 56), and the notices of its answers:
the sending Postfix's, and the DSN mailfromd writes itself (``send_dsn``).

Debian 12's mailfromd 8.15 (GNU Mailutils 3.15's libraries and the others it links with,
:data:`PACKAGES`, unpacked under :data:`ROOT`, never installed) runs in the foreground with a
filter of ours, :data:`FILTER` (MFL, no preprocessor), on :data:`MILTER_PORT`. Two instances
of the system's Postfix (``postfix.configure``): the sending one takes the cases on
:data:`PORT` and sends each recipient domain to the receiving one's listener
(:data:`RECV_PORT`, ``smtpd_milters`` naming mailfromd), whose transport map discards what it
takes. What the filter does, by the recipient's domain:

* :data:`REFUSE`: ``reject 550 5.7.1`` at RCPT, its text "Mail to this domain is refused by
  local policy";
* :data:`DEFER`: ``tempfail 451 4.7.1`` at RCPT, "Sender temporarily blocked by local policy,
  try again later", at every try (the sender warns, then gives up);
* :data:`CONTENT`: ``reject 554 5.7.1`` at the end of the message, "Message content refused:
  classified as spam";
* :data:`OWN_DSN`: the message is taken (``discard``) and mailfromd sends the envelope sender
  a DSN of its own, ``send_dsn`` with the text "Your message was not delivered: its content
  is refused by the policy of this site.", through its default mailer (:data:`MAILER`'s URL:
  the capture server).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from . import postfix
from .cases import MAILFROMD_CASES, load
from .destination import Destination
from .host import listening
from .packages import extract
from .rows import Row

MTA = "mailfromd"
ROOT = Path("/tmp/mta-r56-mailfromd")
RUN = ROOT / "run"
SEND = ROOT / "send"
RECV = ROOT / "recv"
PORT = 8135  # 2535 + the helper's test port offset (5600): the sending Postfix
RECV_PORT = 8136  # the receiving Postfix's listener with the milter
MILTER_PORT = 8137  # mailfromd
PACKAGES = [
    "mailfromd", "libmailutils9", "libmu-dbm9", "mailutils-common", "libadns1", "libmaxminddb0",
    "libkyotocabinet16v5", "libltdl7", "libgsasl18", "libntlm0", "libidn12", "liblzo2-2",
    "libgssglue1",
]  # fmt: skip
REFUSE = "persimmon-m.test"
DEFER = "loquat-m.test"
CONTENT = "medlar-m.test"
OWN_DSN = "jujube-m.test"
DSN_TEXT = "Your message was not delivered: its content is refused by the policy of this site."
FILTER = f"""\
#pragma regex +extended
string sender_seen
string rcpt_seen

func bare(string address) returns string
do
  if address matches "^<(.*)>$"
    return "\\1"
  fi
  return address
done

prog envfrom
do
  set sender_seen bare($1)
done

prog envrcpt
do
  set rcpt_seen bare($1)
  if domainpart(rcpt_seen) = "{REFUSE}"
    reject 550 5.7.1 "Mail to this domain is refused by local policy"
  elif domainpart(rcpt_seen) = "{DEFER}"
    tempfail 451 4.7.1 "Sender temporarily blocked by local policy, try again later"
  fi
done

prog eom
do
  if domainpart(rcpt_seen) = "{CONTENT}"
    reject 554 5.7.1 "Message content refused: classified as spam"
  elif domainpart(rcpt_seen) = "{OWN_DSN}"
    send_dsn(sender_seen, "", rcpt_seen, "{DSN_TEXT}")
    discard
  fi
done
"""


def _libraries() -> str:
    return ":".join(
        str(ROOT / sub) for sub in ("usr/lib/x86_64-linux-gnu", "usr/lib", "lib/x86_64-linux-gnu")
    )


@contextmanager
def receiving(destination: Destination, out: Path) -> Iterator[str]:
    """mailfromd and the receiving Postfix while open; mailfromd's version. Their logs are
    copied beside ``out`` on leaving."""
    version = extract(PACKAGES, ROOT)["mailfromd"]
    if RUN.exists():
        shutil.rmtree(RUN)
    RUN.mkdir(parents=True)
    os.chmod(ROOT, 0o755)
    (RUN / "filter.mfl").write_text(FILTER)
    shutil.chown(RUN, "nobody", "nogroup")  # its state directory, as the user it runs as
    routes = {"sender.test": f"smtp:[{destination.host}]:{destination.capture_port}"}
    routes |= {domain: "discard:" for domain in (REFUSE, DEFER, CONTENT, OWN_DSN)}
    master = (
        f"127.0.0.1:{RECV_PORT} inet n - n - - smtpd"
        f" -o smtpd_milters=inet:127.0.0.1:{MILTER_PORT}\n" + postfix.SERVICES
    )
    postfix.configure(RECV, "kaki-m.test", master, routes, {"postmaster": "root"})
    mailer = f"smtp://{destination.host}:{destination.capture_port}"
    command = [
        str(ROOT / "usr/sbin/mailfromd"), "--foreground", "--stderr", "--no-preprocessor",
        f"--include-path={ROOT / 'usr/share/mailfromd/8.15'}", f"--state-directory={RUN}",
        f"--pidfile={RUN / 'mailfromd.pid'}", f"--port=inet://127.0.0.1:{MILTER_PORT}",
        f"--mailer={mailer}", "--user=nobody", str(RUN / "filter.mfl"),
    ]  # fmt: skip
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": _libraries()}
    with ExitStack() as stack:
        stack.enter_context(listening(command, MILTER_PORT, "mailfromd", RUN / "mailfromd.log",
                                      env=env))  # fmt: skip
        stack.callback(shutil.copy, RUN / "mailfromd.log", out.parent / f"{MTA}-milter.log")
        postfix._postfix(RECV, "start")
        stack.callback(shutil.copy, RECV / "maillog", out.parent / f"{MTA}-receiving.log")
        stack.callback(postfix._postfix, RECV, "stop")
        yield f"mailfromd-{version}"


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, MAILFROMD_CASES)
    relays = dict.fromkeys((REFUSE, DEFER, CONTENT, OWN_DSN), RECV_PORT)
    postfix.configure_sending(SEND, "cherimoya-m.test", PORT, destination, relays)
    with receiving(destination, out) as version:
        return postfix.run(SEND, PORT, destination, built, out, MTA, behind=version)
