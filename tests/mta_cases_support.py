"""What the bounce tests check of a round's committed case file: it is scored (in
``CASE_FILES``), its modules are run (in ``MTAS``) and split, and each module's cases, labelled
rows and delay warnings number what the round generated, every row with a note saying why and
the delivery its notice tells (as ``Label`` defines it)."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

from bench.bounce_accuracy.mtas import MTAS
from bench.bounce_accuracy.mtas.cases import CASE_FILES, DEFERRED, FAILED, load, splits


def assert_committed_set(
    case_file: Path,
    mtas: tuple[str, ...],
    *,
    cases: tuple[int, ...],
    rows: tuple[int, ...],
    senders: int,
    delayed: tuple[int, ...] | None = None,
    split: str | None = None,
    statuses: Collection[int | None] | None = None,
) -> None:
    """``cases``, ``rows`` and ``delayed`` (cases with a delay warning; None: not checked) per
    module of ``mtas``, in its order; ``senders``: distinct senders over all of them; ``split``:
    the one every module is in (None: each "dev" or "unseen"); ``statuses``: those every row's
    status is one of (None: not checked)."""
    assert case_file in CASE_FILES
    for mta in mtas:
        assert mta in MTAS
    found = splits(case_file)
    assert set(found) == set(mtas)
    assert all(found[mta] in ((split,) if split else ("dev", "unseen")) for mta in mtas)
    seen: set[str] = set()
    for index, mta in enumerate(mtas):
        loaded = load(mta, case_file)
        assert len(loaded) == cases[index]
        labels = [x for case in loaded for x in (*case.failed.values(), *case.delayed.values())]
        assert len(labels) == rows[index]
        assert all(label.note for label in labels)
        if statuses is not None:
            assert all(label.status in statuses for label in labels)
        for case in loaded:  # a final notice's row is failed, or no bounce (no status) at all
            for label in case.failed.values():
                assert label.delivery == (FAILED if label.status is not None else None)
            assert all(label.delivery == DEFERRED for label in case.delayed.values())
        if delayed is not None:
            assert sum(1 for case in loaded if case.delayed) == delayed[index]
        seen |= {case.sender for case in loaded}
    assert len(seen) == senders
