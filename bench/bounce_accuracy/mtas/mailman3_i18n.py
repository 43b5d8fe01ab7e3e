"""What Mailman 3 sends in another language (round 77): round 51's run (``mailman3.deliver``)
once for each of :data:`LANGUAGES`, every list created with that preferred language (``mailman
create --language``), one after another under ``/tmp/r77-mailman3``; its notices' templates and
the reasons of its rules come from its own translations (``mailman/templates/<code>/``,
``mailman/messages/<code>/LC_MESSAGES/mailman.mo``). The cases are ``mailman3_i18n`` in
``list_i18n_cases.yaml``, named after the language (``de-post-not-member``).
"""

from __future__ import annotations

from pathlib import Path

from . import mailman3
from .cases import LIST_I18N_CASES, load
from .destination import Destination
from .rows import Row

MTA = "mailman3_i18n"
ROOT = Path("/tmp/r77-mailman3")
# round 77's block (19800-19824): Postfix, the LMTP runner, the REST runner (unused, loopback)
PORT, LMTP_PORT, REST_PORT = 19800, 19801, 19802
LANGUAGES = ("de", "fr", "es", "it", "ja", "ru", "pt_BR")


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, LIST_I18N_CASES)
    rows: list[Row] = []
    for lang in LANGUAGES:
        cases = [case for case in built if case.name.startswith(f"{lang}-")]
        run = mailman3.Run(MTA, ROOT, PORT, LMTP_PORT, REST_PORT, lang, f"{lang}-")
        rows += mailman3.deliver(out, destination, cases, run)
    return rows
