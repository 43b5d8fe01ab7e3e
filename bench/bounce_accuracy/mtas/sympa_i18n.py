"""What Sympa sends in another language (round 77): round 52's run (``sympa.deliver``) once for
each of :data:`LANGUAGES`, with ``lang <code>`` in its ``sympa.conf`` (the robot's language, and
its lists'), one after another under ``/tmp/r77-sympa``; its templates' sentences come from its
own catalogue (``sympa.mo``). The cases are ``sympa_i18n`` in ``list_i18n_cases.yaml``, named
after the language (``de-post-not-member``). Sympa listens on no port (mail reaches it on its
programs' standard input; its ``sendmail`` hands its answers to the destination's servers).
"""

from __future__ import annotations

from pathlib import Path

from . import sympa
from .cases import LIST_I18N_CASES, load
from .destination import Destination
from .rows import Row

MTA = "sympa_i18n"
ROOT = Path("/tmp/r77-sympa")
# Sympa's codes (its ``supported_lang``): the eight catalogues that translate every msgid of
# round 52's refusals, then three that translate some of them (list_i18n_cases.yaml says which).
LANGUAGES = ("de", "fr", "es", "it", "ja", "ru", "ca", "gl", "pt-BR", "nl", "pl")


def generate(out: Path, destination: Destination) -> list[Row]:
    built = load(MTA, LIST_I18N_CASES)
    rows: list[Row] = []
    for lang in LANGUAGES:
        cases = [case for case in built if case.name.startswith(f"{lang}-")]
        run = sympa.Run(MTA, ROOT, ROOT / f"run-{lang}", lang, f"{lang}-")
        rows += sympa.deliver(out, destination, cases, run)
    return rows
