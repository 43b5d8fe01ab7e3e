"""Providers' published SMTP replies (``bench/bounce_accuracy/published_replies.yaml``), checked
for their shape: every reply is labelled from its provider's page, with a status of the design's
table, a note saying why and the page it was read from. No classifier runs here: the file's
unseen rows are only measured (bench/README.md, Round 25), never held by a test."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from bench.bounce_accuracy.mtas.rows import STATUSES
from bench.bounce_accuracy.published import SPLITS, Reply, replies

ROWS = replies()
SHARED = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "bounces"


def test_there_are_replies_of_many_providers() -> None:
    assert 80 <= len(ROWS) <= 500
    assert len({r.provider for r in ROWS}) >= 10


def test_every_round_is_a_round_that_built_rows() -> None:
    assert {r.round for r in ROWS} <= {25, 27, 29, 72}


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.line[:60])
def test_every_reply_is_labelled_from_a_page(row: Reply) -> None:
    assert row.status in STATUSES
    assert row.provider.strip()
    assert row.source.startswith(("https://", "http://"))
    assert len(row.note) > 10
    assert row.split in SPLITS
    assert re.fullmatch(r"[a-z]{2}", row.language)
    assert row.text.strip() and row.text == row.text.strip()
    if row.code is not None:
        assert 400 <= row.code < 600
    if row.enhanced:
        assert row.enhanced[0] in "45" and len(row.enhanced.split(".")) == 3
        assert row.temporary == (row.enhanced[0] == "4"), "temporary follows the status's class"
    else:
        assert row.temporary == (row.code is not None and row.code < 500)


def test_every_reply_appears_once() -> None:
    twice = [line for line, n in Counter(r.line for r in ROWS).items() if n > 1]
    assert not twice


@pytest.mark.skipif(not (SHARED / "provider_replies.jsonl").exists(), reason="no shared corpus")
def test_no_reply_is_one_of_the_shared_corpus() -> None:
    shared = {
        json.loads(line)["reply"].lower()
        for line in (SHARED / "provider_replies.jsonl").open(encoding="utf-8")
    }
    assert not [r.line for r in ROWS if r.line.lower() in shared]
