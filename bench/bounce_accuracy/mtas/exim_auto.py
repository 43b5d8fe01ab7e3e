"""Exim's automatic mail that is no failure (round 37): replies of its ``autoreply`` transport
(a vacation router, as Exim's specification sets one up) and the success notices it sends when
the sender asked for them (``dsn_advertise_hosts``, RFC 3461 ``NOTIFY=SUCCESS``): "delivered"
for a mailbox of its own, "relayed" for a server that does not speak DSN.

Debian's exim4-daemon-light (``exim.unpack``), a second daemon under ``/tmp/mta-exim-auto``
set up as ``exim.py``'s (``exim.configure``, ``exim.run``), final destination of
``oakwood.test`` (mailboxes of its own; ``VACATION`` users answer automatically and keep the
message), ``birchwood.test`` sent to the scripted server and ``sender.test`` (the answers) to
the capture server. The cases are ``exim_auto`` in ``auto_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import exim
from .cases import load, script_replies
from .destination import Destination
from .rows import Row

MTA = "exim_auto"
ROOT = Path("/tmp/mta-exim-auto")
PORT = 6447  # 2547 + the helper's test port offset (3900)
LOCAL = "oakwood.test"
MAILBOXES = ("kari.nes", "louis.marin", "mona.berg", "pia.moe")
# Each vacation user's subject and text (the autoreply transport's subject and file).
VACATION = {
    "kari.nes": (
        "Out of office",
        "I am out of the office until 6 January and will read your message when I return.\n"
        "For anything urgent, please call the reception.\n",
    ),
    "louis.marin": (
        "Réponse automatique : absent du bureau",
        "Je suis absent jusqu'au 6 janvier, sans accès à ma messagerie.\n"
        "Votre message sera traité à mon retour.\n",
    ),
    "mona.berg": (
        "Your mail",
        "I am on parental leave until March and this mailbox is not read.\n"
        "Your message has not been passed on to anyone; please contact office@oakwood.test.\n",
    ),
}

ROUTERS = """\
vacation:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;ROOT/etc/vacation-users
  condition = ${if or{{match{$h_precedence:}{(?i)junk|bulk|list}}{eq{$sender_address}{}}}{no}{yes}}
  transport = vacation_reply
  unseen

mailboxes:
  driver = accept
  domains = +local_domains
  local_parts = lsearch;ROOT/etc/mailboxes
  transport = mailbox

"""

TRANSPORTS = """\
remote_smtp:
  driver = smtp

vacation_reply:
  driver = autoreply
  user = Debian-exim
  to = $sender_address
  from = $local_part@$domain
  subject = ${rfc2047:${lookup{$local_part_data}lsearch{ROOT/etc/vacation-subjects}}}
  headers = MIME-Version: 1.0\\nContent-Type: text/plain; charset=utf-8
  file = ROOT/etc/vacation-$local_part_data.txt
  return_message = false

mailbox:
  driver = appendfile
  file = ROOT/mail/$local_part_data
  user = Debian-exim
  delivery_date_add
  envelope_to_add
  return_path_add

"""


def _configure(destination: Destination) -> Path:
    routes = [
        exim.Route("capture", "sender.test", destination.capture_port),
        exim.Route("remote", "birchwood.test", destination.port),
    ]
    routers = ROUTERS.replace("ROOT", str(ROOT))
    transports = TRANSPORTS.replace("ROOT", str(ROOT))
    config = exim.configure(ROOT, LOCAL, PORT, routes, routers, transports)
    text = config.read_text()
    config.write_text(text.replace("begin acl", "dsn_advertise_hosts = 127.0.0.1\n\nbegin acl", 1))
    exim.mailboxes(ROOT)
    etc = ROOT / "etc"
    (etc / "mailboxes").write_text("".join(f"{u}: {u}\n" for u in MAILBOXES))
    (etc / "vacation-users").write_text("".join(f"{u}: {u}\n" for u in VACATION))
    (etc / "vacation-subjects").write_text(
        "".join(f"{u}: {subject}\n" for u, (subject, _) in VACATION.items()), "utf-8"
    )
    for user, (_, text) in VACATION.items():
        (etc / f"vacation-{user}.txt").write_text(text, "utf-8")
    return config


def generate(out: Path, destination: Destination) -> list[Row]:
    version = exim.unpack(ROOT)
    built = load(MTA)
    script_replies(destination, built)
    config = _configure(destination)
    return exim.run(ROOT, PORT, config, destination, built, out, MTA, version)
