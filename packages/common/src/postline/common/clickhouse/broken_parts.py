"""Broken parts of a running ClickHouse: found with CHECK TABLE, moved aside with DETACH PART.

A merge that runs while the disk fills up can commit a part whose files are empty (chdb
26.9.2.1 on a tmpfs filled from outside, as the fault suite does: every file of the merged part
0 bytes from its ``tmp_merge_`` directory on, while the part in memory says some 500 KB).
ClickHouse uses such a part until the table is loaded again — a server moves broken parts
aside when it starts, a running process (chdb lives as long as the service) never does — so
every query that reads it fails with a read error (``Code: 33 CANNOT_READ_ALL_DATA``), for
ever: for reports, every insert whose deduplication lookup (migration 0007) reads that part.

``find_broken`` finds the parts CHECK TABLE refuses and ``detach`` detaches them: a detached
part moves to its table's ``detached/`` directory (``system.detached_parts``), kept for an
operator and never deleted, and is no longer read. DETACH PART reserves room on the disk, so
while the disk is still full it is refused (``NOT_ENOUGH_SPACE``) and has to be tried again.
The part's rows leave the table with it: the parts it was merged from are gone (chdb removes
them within seconds, ``old_parts_lifetime`` 0; a server keeps them on disk for 8 minutes, where
only an operator could take them back).
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

logger = logging.getLogger(__name__)

# Errors of stored data that cannot be read as it was written (a query that fails with one of
# these may have met a broken part).
CORRUPTION_CODES = frozenset(
    {
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED: a part's columns.txt or checksums.txt
        32,  # ATTEMPT_TO_READ_AFTER_EOF
        33,  # CANNOT_READ_ALL_DATA: a column file shorter than its marks (empty, truncated)
        40,  # CHECKSUM_DOESNT_MATCH
        228,  # BAD_SIZE_OF_FILE_IN_DATA_PART
        246,  # CORRUPTED_DATA
        271,  # CANNOT_DECOMPRESS
    }
)

_CODE = re.compile(r"\bCode:\s*(\d+)")
_PART_NAME = re.compile(r"^[A-Za-z0-9_-]+$")


def error_code(error: BaseException) -> int | None:
    """The ClickHouse error code of an exception, if it carries one."""
    code = getattr(error, "code", None)  # clickhouse-connect's errors, HTTP and chdb alike
    if isinstance(code, int):
        return code
    found = _CODE.search(str(error))
    return int(found[1]) if found else None


def is_corruption(error: BaseException) -> bool:
    """Whether a failed query may have met a broken part (see ``CORRUPTION_CODES``)."""
    return error_code(error) in CORRUPTION_CODES


@dataclass(frozen=True)
class BrokenPart:
    table: str  # database.table
    name: str  # the part's name, e.g. 202612_1_714_261
    error: str  # what CHECK TABLE said of it (its first line)
    rows: int = 0


def broken_parts(client: Client, table: str) -> list[BrokenPart]:
    """The active parts of ``table`` that CHECK TABLE refuses (it reads every part whole)."""
    answer = client.raw_query(
        f"CHECK TABLE {table}",
        settings={"check_query_single_value_result": 0},
        fmt="JSONEachRow",
    )
    found = []
    for line in answer.decode().splitlines():
        row = json.loads(line)
        if not int(row["is_passed"]):
            message = str(row.get("message") or "").strip().splitlines()
            found.append(BrokenPart(table, str(row["part_path"]), message[0] if message else ""))
    return found


def find_broken(client: Client, tables: Sequence[str]) -> list[BrokenPart]:
    """The broken parts of these tables, with their rows."""
    found = []
    for table in tables:
        for part in broken_parts(client, table):
            rows = _active_rows(client, part)
            if rows is not None:
                found.append(BrokenPart(part.table, part.name, part.error, rows))
    return found


def _active_rows(client: Client, part: BrokenPart) -> int | None:
    """The rows of a part, None if it is no longer active (detached, merged away)."""
    database, _, name = part.table.partition(".")
    rows = client.query(
        "SELECT rows FROM system.parts WHERE database = {d:String} AND table = {t:String} "
        "AND name = {p:String} AND active",
        parameters={"d": database, "t": name, "p": part.name},
    ).result_rows
    return int(rows[0][0]) if rows else None


def detach(
    client: Client, parts: Sequence[BrokenPart]
) -> tuple[list[BrokenPart], list[BrokenPart]]:
    """Detach these parts: (those detached, those ClickHouse refused to detach now, e.g. for
    a full disk: to be tried again)."""
    detached: list[BrokenPart] = []
    refused: list[BrokenPart] = []
    for part in parts:
        if not _PART_NAME.match(part.name):
            logger.error("%s: broken part %r not detached (unexpected name)", part.table, part.name)
            continue
        if _active_rows(client, part) is None:
            continue  # gone meanwhile
        try:
            client.command(f"ALTER TABLE {part.table} DETACH PART '{part.name}'")
        except Exception as exc:
            logger.warning(
                "%s: part %s is broken (%s); not detached yet: %s",
                part.table,
                part.name,
                part.error,
                (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300],
            )
            refused.append(part)
            continue
        logger.error(
            "%s: part %s is broken (%s); detached with its %d rows (kept in detached/)",
            part.table,
            part.name,
            part.error,
            part.rows,
        )
        detached.append(part)
    return detached, refused
