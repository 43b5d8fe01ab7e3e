"""Providers' published SMTP replies (``published_replies.yaml``): each reply as the server
sends it, labelled from the provider's error-code page (bench/README.md, Round 25).

A row's ``split`` says whether the rules were written knowing it (``dev``) or it is only
measured (``unseen``, the default: a row without a split has not been read by any round), and its
``round`` which round added it (25: providers' error pages; 27: sending services', filters' and
hosts' pages; 29: replies and notice sentences in other languages, and providers outside the
English-speaking world; 72: mail server products' and gateways' own replies), and
``language`` the language of its words. A reply's ``status`` is one
of the design's error statuses, as a generated notice's label is (``mtas/rows.py``'s
``STATUSES``: not 10, Postline's own)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

PUBLISHED = Path(__file__).with_name("published_replies.yaml")
SPLITS = ("dev", "unseen")


@dataclass(frozen=True)
class Reply:
    provider: str
    source: str
    code: int | None
    enhanced: str
    text: str
    status: int
    temporary: bool
    note: str
    split: str = "unseen"
    round: int = 25
    # the words' language (ISO 639-1); a mixed reply is named by its other language
    language: str = "en"

    @property
    def line(self) -> str:
        """The reply as the server sends it: code, enhanced status, text."""
        return " ".join(p for p in (str(self.code or ""), self.enhanced, self.text) if p)


def replies(path: Path = PUBLISHED) -> list[Reply]:
    rows = yaml.safe_load(path.read_text("utf-8"))["replies"]
    return [
        Reply(**{**row, "enhanced": str(row.get("enhanced") or ""), "note": str(row["note"])})
        for row in rows
    ]
