"""Sendmail's notices of GNU Mailutils' ``mda`` failing in another language (round 75): round 62's
``mailutils_sendmail`` run (``mailutils_sendmail.deliver``) once for each of Mailutils'
locales (``mailutils.LANGUAGES``, its own catalogues), ``mda`` under ``LANG=<locale>.UTF-8``
with a locale built into a private ``LOCPATH`` (``mailutils.language``), under
``/tmp/r75-mailutils``. The cases are ``mailutils_i18n_sendmail`` in ``i18n_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import mailutils, mailutils_sendmail
from .destination import Destination
from .rows import Row

MTA = "mailutils_i18n_sendmail"
PORT = 19760  # round 75's block (19750-19774); the lmtpds on the next two ports


def generate(out: Path, destination: Destination) -> list[Row]:
    return mailutils.in_languages(out, destination, MTA, PORT, mailutils_sendmail.deliver)
