"""The bounce classifier over the shared corpus, one test per mail.

Each mail's answers (bounce or not, every labelled recipient found, each recipient's error
status) must match the labels, except for the rows listed in ``test_bounce_corpus.yaml``
with the evidence Postline read: a mail must disagree exactly as listed, so a regression
and a fix both show here (regenerate that file with the benchmark and review the diff).
The figures over the whole corpus are in bench/README.md.
"""

from __future__ import annotations

import collections
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from postline.bounce.mail import Kind
from postline.bounce.verdicts import classify_mail
from tests.conftest import ROOT

CORPUS = ROOT.parent / "shared" / "corpus" / "bounces"
LABELS = CORPUS / "sisimai" / "labels.jsonl"
EXPECTED = Path(__file__).with_suffix(".yaml")

pytestmark = pytest.mark.skipif(
    not LABELS.exists(), reason=f"bounce corpus not found at {CORPUS} (clone shared/ beside)"
)


@cache
def _labels() -> dict[str, list[dict[str, Any]]]:
    by_file: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    if LABELS.exists():
        for line in LABELS.open(encoding="utf-8"):
            row = json.loads(line)
            by_file[row["file"]].append(row)
    return dict(sorted(by_file.items()))


@cache
def _expected() -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    for item in yaml.safe_load(EXPECTED.read_text(encoding="utf-8"))["disagreements"]:
        found[item["file"]].add((item["check"], str(item.get("recipient", "")).lower()))
    return found


def _disagreements(name: str, rows: list[dict[str, Any]]) -> set[tuple[str, str]]:
    report, verdicts = classify_mail((CORPUS / "sisimai" / name).read_bytes())
    found: set[tuple[str, str]] = set()
    if any(r["mapped_status"] is not None for r in rows) != (report.kind is Kind.BOUNCE):
        found.add(("kind", ""))
    if report.kind is Kind.BOUNCE:
        addresses = {v.recipient.lower() for v in verdicts}
    elif report.kind is Kind.FEEDBACK:
        addresses = {a.lower() for a in report.feedback_recipients}
    else:
        addresses = {r.recipient.lower() for r in report.recipients}
    by_rcpt = {v.recipient.lower(): v for v in verdicts}
    labelled = [r for r in rows if r["mapped_status"] is not None]
    for row in rows:
        recipient = row["recipient"].lower()
        # sisimai invents an address (ending .invalid) when a report names nobody.
        if not recipient.endswith(".invalid") and recipient not in addresses:
            found.add(("recipient", recipient))
        if row["mapped_status"] is None:
            continue
        verdict = by_rcpt.get(recipient)
        if verdict is None and len(labelled) == 1 and len(verdicts) == 1:
            verdict = verdicts[0]  # the mail's one failure, under another address
        if verdict is None or verdict.status != row["mapped_status"]:
            found.add(("status", recipient))
    return found


@pytest.mark.parametrize("name", list(_labels()), ids=lambda n: n.removeprefix("eml/"))
def test_mail_matches_its_labels(name: str) -> None:
    assert _disagreements(name, _labels()[name]) == _expected().get(name, set())


def test_the_listed_disagreements_are_few() -> None:
    rows = sum(len(r) for r in _labels().values())
    listed = sum(len(v) for v in _expected().values())
    # bench/README.md records the accuracy; this guards the order of magnitude.
    assert listed <= rows * 0.10
