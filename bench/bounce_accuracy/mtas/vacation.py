"""Vacation replies a mailbox's Sieve filter sends (round 37): automatic mail a bounce address
really receives that is no failure. Dovecot's Pigeonhole runs a user's Sieve script at LMTP
delivery; its ``vacation`` action (RFC 5230) delivers the message and answers its envelope
sender with the user's text, once per sender and period, unless the message looks like a
list's or an automatic one.

Dovecot 2.3.19.1 with Pigeonhole (``dovecot-core``, ``dovecot-lmtpd``, ``dovecot-sieve``
``1:2.3.19.1+dfsg1-2.1+deb12u7``), unpacked under ``/tmp/mta-vacation/root`` (never installed),
runs as round 35's Sieve cases run it (``sieve.CONFIG`` with ``dovecot.configure`` and
``running``: a mount namespace with the unpacked ``usr`` laid over the system's, its users
``nobody``), behind an instance of the system's Postfix
(``postfix.configure``, under ``/tmp/mta-vacation/postfix``) that takes the cases' mail for
``spruce.test``, delivers it over LMTP and relays the replies (Dovecot's ``submission_host``)
to the capture server. Each user's Sieve script is ``SCRIPTS``; the cases are ``vacation`` in
``auto_cases.yaml``. The setup is ``sieve.serve``, which ``receipts.py`` runs as well.
"""

from __future__ import annotations

from pathlib import Path

from .cases import load
from .destination import Destination
from .rows import Row
from .sieve import serve

MTA = "vacation"
ROOT = Path("/tmp/mta-vacation")
PORT = 6437  # 2537 + the helper's test port offset (3900)
DOVECOT_PORT = 6439
LOCAL = "hemlock.test"  # Postfix's own domain (nothing is sent to it)
DOMAIN = "spruce.test"  # the recipients' domain, whose mailboxes Dovecot keeps

USERS = ("anna.vik", "bruno.sala", "carla.ruiz", "dieter.hahn", "emil.sund", "greta.holm")
# Each user's active Sieve script (greta.holm has none: mail to her is only delivered).
SCRIPTS = {
    "anna.vik": (
        'require "vacation";\n'
        'vacation :days 7 "I am out of the office until 4 January with no access to email.\n'
        'For urgent matters please call the front desk.";\n'
    ),
    "bruno.sala": (
        'require "vacation";\n'
        'vacation :days 1 :subject "Out of office" :from "bruno.sala@spruce.test"\n'
        '  "Thank you for your message. I am away until Monday 11 January and will answer\n'
        'when I am back. Your message has not been forwarded.";\n'
    ),
    "carla.ruiz": (
        'require "vacation";\n'
        'vacation :subject "Respuesta automática: fuera de la oficina"\n'
        '  "Estoy de vacaciones hasta el 8 de enero, sin acceso al correo.\n'
        'Su mensaje será leído a mi regreso.";\n'
    ),
    "dieter.hahn": (
        'require "vacation";\n'
        'vacation :subject "Abwesenheitsnotiz"\n'
        '  "Ich bin bis zum 8. Januar nicht im Büro und lese meine E-Mails nicht.\n'
        'In dringenden Fällen wenden Sie sich bitte an info@spruce.test.";\n'
    ),
    "emil.sund": (
        'require "vacation";\n'
        'vacation :days 1 :subject "Re: your message"\n'
        '  "This mailbox is not monitored and your message will not be read.\n'
        'Please write to support@spruce.test instead.";\n'
    ),
}


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA)
    return serve(ROOT, PORT, DOVECOT_PORT, LOCAL, DOMAIN, USERS, SCRIPTS, destination, built,
                 out, MTA)  # fmt: skip
