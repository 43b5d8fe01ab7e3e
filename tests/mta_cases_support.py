"""What the bounce tests check of a round's committed case file: it is scored (in
``CASE_FILES``), its modules are run (in ``MTAS``) and split, and each module's cases, labelled
rows and delay warnings number what the round generated, every row with a note saying why."""

from __future__ import annotations

from pathlib import Path

from bench.bounce_accuracy.mtas import MTAS
from bench.bounce_accuracy.mtas.cases import CASE_FILES, load, splits


def assert_committed_set(
    case_file: Path,
    mtas: tuple[str, ...],
    *,
    cases: tuple[int, ...],
    rows: tuple[int, ...],
    senders: int,
    delayed: tuple[int, ...] | None = None,
) -> None:
    """``cases``, ``rows`` and ``delayed`` (cases with a delay warning; None: not checked) per
    module of ``mtas``, in its order; ``senders``: distinct senders over all of them."""
    assert case_file in CASE_FILES
    for mta in mtas:
        assert mta in MTAS
    assert set(splits(case_file)) == set(mtas)
    seen: set[str] = set()
    for index, mta in enumerate(mtas):
        loaded = load(mta, case_file)
        assert len(loaded) == cases[index]
        labels = [x for case in loaded for x in (*case.failed.values(), *case.delayed.values())]
        assert len(labels) == rows[index]
        assert all(label.note for label in labels)
        if delayed is not None:
            assert sum(1 for case in loaded if case.delayed) == delayed[index]
        seen |= {case.sender for case in loaded}
    assert len(seen) == senders
