"""The labels of the MTA-made bounce notices (``bench/bounce_accuracy/mta_cases.yaml`` and
``filter_cases.yaml``), checked for their shape without running any MTA: every case is labelled
from its construction, with a note, a status of the design's table and a delivery, for an
address it was sent to.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from bench.bounce_accuracy.mtas import MTAS
from bench.bounce_accuracy.mtas.cases import (
    AUTO_CASES,
    CASE_FILES,
    FILTER_CASES,
    committed,
    load,
    splits,
)
from bench.bounce_accuracy.mtas.destination import DATA, RCPT
from bench.bounce_accuracy.mtas.rows import DELIVERIES, STATUSES, Row, read_labels, write_labels

MANIFESTS = [yaml.safe_load(path.read_text("utf-8")) for path in CASE_FILES]
NAMED = [key for data in MANIFESTS for key in data if key not in ("version", "split")]


def test_every_section_is_an_mta_the_driver_knows_with_a_split() -> None:
    assert NAMED
    assert len(set(NAMED)) == len(NAMED), "an MTA's cases are in one file"
    assert set(NAMED) <= set(MTAS)
    assert set(splits()) == set(NAMED)
    assert set(splits().values()) <= {"dev", "unseen"}


@pytest.mark.parametrize("mta", NAMED)
def test_every_row_has_a_note_a_status_of_the_table_and_a_delivery(mta: str) -> None:
    cases = load(mta)
    assert cases
    # A case with no recipient is a report a filter sends about another case's message (round
    # 45): its row names an address that case sent to.
    sent = {address for case in cases for address in case.recipients}
    for case in cases:
        labels = {**case.failed, **case.delayed}
        assert labels, f"{mta}/{case.name}: no labelled recipient"
        for address, label in labels.items():
            where = f"{mta}/{case.name}: {address}"
            assert label.status in STATUSES or label.status is None, where
            assert label.note.strip(), where
            if address is not None or label.status is not None:
                known = case.recipients or sent
                assert address in known, f"{where} is not an address the case sent to"
        # An answer that is no bounce (round 37) has no delivery; a failure's is "failed".
        assert all(
            label.delivery == ("failed" if label.status is not None else None)
            for label in case.failed.values()
        ), case.name
        assert all(label.delivery == "deferred" for label in case.delayed.values()), case.name


@pytest.mark.parametrize("mta", NAMED)
def test_cases_are_told_apart_and_carry_no_word_of_their_failure(mta: str) -> None:
    cases = load(mta)
    assert len({c.name for c in cases}) == len(cases)
    senders = Counter(c.sender for c in cases)
    assert max(senders.values()) == 1, "the notices of a case come back to its own sender"
    for case in cases:
        failures = {a for a, label in case.failed.items() if label.status is not None}
        assert not set(case.delivered) & failures, case.name  # a receipt's may be delivered
        assert set(case.delivered) <= set(case.recipients), case.name
        assert all(reply.stage in (RCPT, DATA) for reply in case.scripts.values()), case.name
        for address in (case.sender, *case.recipients):
            for word in ("unknown", "full", "quota", "spam", "relay", "refused", "big", "nx"):
                local = address.partition("@")[0]
                assert word not in local.lower(), f"{case.name}: {address} names the failure"


def test_rows_written_by_one_mta_keep_the_others(tmp_path: Path) -> None:
    labels = tmp_path / "labels.jsonl"
    first = Row("postfix/a.eml", "a@x.test", 2, "failed", "why", "postfix", "3.7.11")
    other = Row("sendmail/b.eml", "b@x.test", 5, "failed", "why", "sendmail", "8.17")
    write_labels(labels, [first, other], {"postfix", "sendmail"})
    again = Row("postfix/c.eml", "c@x.test", 1, "failed", "why", "postfix", "3.7.11")
    write_labels(labels, [again], {"postfix"})
    assert read_labels(labels) == [asdict(other), asdict(again)]
    assert all(row["split"] == "unseen" for row in read_labels(labels))
    assert DELIVERIES == {"failed", "deferred"}


def test_the_bench_scores_each_committed_label_under_its_notice_file() -> None:
    labels = committed()
    expected = sum(len(c.failed) + len(c.delayed) for mta in NAMED for c in load(mta))
    assert len(labels) == expected
    for (file, _), label in labels.items():
        assert file.endswith("-delay.eml") == (label.delivery == "deferred"), file


def test_automatic_answers_are_no_bounce_and_list_refusals_never_an_unknown_user() -> None:
    """Round 37: vacation replies and receipts are labelled no bounce; a list's refusal of a
    post is its policy (4) or a size (8), never 2, which would suppress the live list."""
    for mta in ("vacation", "receipts", "exim_auto", "sendmail_auto", "vacation_program"):
        assert all(label.status is None for case in load(mta) for label in case.failed.values()), (
            mta
        )
    statuses = {label.status for case in load("mlmmj") for label in case.failed.values()}
    assert statuses == {None, 4, 8}
    data = yaml.safe_load(AUTO_CASES.read_text("utf-8"))
    for mta in ("vacation", "receipts", "mlmmj", "exim_auto", "sendmail_auto", "vacation_program"):
        for entry in data[mta]:
            assert entry.get("wording", "").strip(), f"{mta}/{entry['case']}"


def test_every_filter_case_says_where_its_wording_comes_from() -> None:
    data = yaml.safe_load(FILTER_CASES.read_text("utf-8"))
    for mta in data["split"]:
        for entry in data[mta]:
            assert entry.get("wording", "").strip(), f"{mta}/{entry['case']}"
