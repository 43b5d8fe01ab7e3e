"""The ingest journal: inserts begun and not ended, kept on disk until they have."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import pytest

from postline.reports.journal import SUFFIX, Journal, decode, encode, key_of

INSERTS = [
    ("postline.delivery_events_input", b"\x00\x01events"),
    ("postline.error_events_input", b""),
]


def test_an_entry_reads_back_as_it_was_written() -> None:
    assert decode(encode(INSERTS)) == INSERTS
    with pytest.raises(ValueError, match="truncated"):
        decode(encode(INSERTS)[:-9])
    with pytest.raises(ValueError, match="not a journal entry"):
        decode(b"something else")


def test_an_insert_stays_until_it_ended_and_survives_the_process(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    key = journal.begin(INSERTS)
    assert journal.begin(INSERTS) == key and len(journal) == 1  # a retry keeps one entry
    later = journal.begin([("postline.delivery_events_input", b"later")])
    successor = Journal(tmp_path)  # the process died: its successor finds both, oldest first
    assert [entry.key for entry in successor.unfinished()] == [key, later]
    assert [entry.inserts for entry in successor.unfinished(besides=key)] == [
        [("postline.delivery_events_input", b"later")]
    ]
    successor.end(key)
    successor.end(later)
    assert len(successor) == 0 and not list(tmp_path.iterdir())


def test_a_half_written_entry_is_no_insert(tmp_path: Path) -> None:
    (tmp_path / f"{time.time_ns()}-{key_of(INSERTS)}.tmp").write_bytes(encode(INSERTS)[:5])
    assert len(Journal(tmp_path)) == 0 and not list(tmp_path.iterdir())


def test_entries_too_old_or_unreadable_are_dropped_with_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    old = tmp_path / f"{time.time_ns() - 7200 * 10**9}-{key_of(INSERTS)}{SUFFIX}"
    old.write_bytes(encode(INSERTS))
    broken = tmp_path / f"{time.time_ns()}-{'0' * 32}{SUFFIX}"
    broken.write_bytes(b"garbage")
    journal = Journal(tmp_path, max_age=3600)
    with caplog.at_level(logging.ERROR):
        assert list(journal.unfinished()) == []
    assert "not sent again" in caplog.text and "unreadable" in caplog.text
    assert len(journal) == 0 and not os.listdir(tmp_path)
