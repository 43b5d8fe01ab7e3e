"""The label of one recipient of one generated notice, and the labels file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

# The design's error statuses but 10 (Postline's own): a label's, here and in the providers'
# published replies (published.py).
STATUSES = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 9, 99})
DELIVERIES = frozenset({"failed", "deferred"})


@dataclass(frozen=True)
class Row:
    """One labelled recipient of a notice, labelled from how its case was built.

    ``status`` is the design's error status (None: the mail is no bounce); ``delivery`` is
    ``failed`` (the MTA gave up) or ``deferred`` (a delay warning, it still tries); ``note``
    says why the label is what it is (the failure made, and what the notice shows of it).
    Only recipients that failed or are delayed get a row: a delivered recipient of the same
    message has none, and the bench counts it if the classifier reports it ("+N not failed").
    """

    file: str  # "<mta>/<case>.eml", relative to the generated folder
    recipient: str | None
    status: int | None
    delivery: str | None
    note: str
    mta: str
    mta_version: str  # the Debian package's version, e.g. "3.7.11-0+deb12u1"
    split: str = "unseen"


def write_labels(path: Path, rows: list[Row], replacing: set[str]) -> None:
    """Write ``rows`` to the labels file, keeping the rows of MTAs not in ``replacing`` (so
    MTAs can be generated one run at a time into the same folder)."""
    kept = [row for row in read_labels(path) if row["mta"] not in replacing]
    lines = [json.dumps(row, ensure_ascii=False) for row in kept]
    lines += [json.dumps(asdict(row), ensure_ascii=False) for row in rows]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def read_labels(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
