"""Exim's notices of GNU Mailutils' ``mda`` failing in the ten other languages of its catalogue
(round 75, kept unseen): ``mailutils_i18n_exim``'s run for ``mailutils.MORE_LANGUAGES``. The
cases are ``mailutils_i18n_more_exim`` in ``i18n_cases.yaml``.
"""

from __future__ import annotations

from pathlib import Path

from . import mailutils, mailutils_exim
from .destination import Destination
from .rows import Row

MTA = "mailutils_i18n_more_exim"
PORT = 19768  # round 75's block (19750-19774); the lmtpds on the next two ports


def generate(out: Path, destination: Destination) -> list[Row]:
    return mailutils.in_languages(out, destination, MTA, PORT, mailutils_exim.deliver,
                                  mailutils.MORE_LANGUAGES)  # fmt: skip
