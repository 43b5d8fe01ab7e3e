"""Inserts begun and not known to have ended, kept on local disk until they have.

ClickHouse has no transaction over a table and the views it feeds: an insert that fails part
way (a full disk, reports killed in the middle) can leave its events in ``delivery_events``
while some rollups never counted them. Sent again with the same deduplication token, the
insert completes what is missing and nothing twice (each table and view deduplicates its own
blocks). Sent in another batch, as RabbitMQ redelivers the events after a crash or a batch
given back, the events are kept back as stored already (migration 0007) and the rollups stay
short.

So each insert's bytes are written here before it starts and removed once ClickHouse accepted
it; before writing anything new, ingest sends again, with their own tokens, the inserts left
here by a failure or by a process that died (oldest first). A retried insert is deduplicated
by ClickHouse only within its deduplication window (1,000 inserts per table), so an entry
older than ``max_age`` is dropped, with an error in the log, rather than sent again.

One process per directory: the entries are this process's (a Kubernetes pod keeps its
``emptyDir`` across container restarts, which is what a crash needs).
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

MAGIC = b"PLJ1"
SUFFIX = ".insert"
# Below the deduplication window's reach at the rates reports writes (about one insert a
# second per table while events flow; none while ClickHouse is down).
MAX_AGE_SECONDS = 3600.0
_HEADER = struct.Struct("!HQ")  # length of the table's name, length of the data

# One insert: the ClickHouse input table and the bytes sent to it.
Insert = tuple[str, bytes]


@dataclass(frozen=True)
class Entry:
    path: Path
    inserts: list[Insert]

    @property
    def key(self) -> str:
        return self.path.name.split("-", 1)[1].removesuffix(SUFFIX)

    @property
    def age(self) -> float:
        return time.time() - int(self.path.name.split("-", 1)[0]) / 1e9


def key_of(inserts: Sequence[Insert]) -> str:
    digest = hashlib.blake2b(digest_size=16)
    for table, data in inserts:
        digest.update(_HEADER.pack(len(table), len(data)))
        digest.update(table.encode())
        digest.update(data)
    return digest.hexdigest()


def encode(inserts: Sequence[Insert]) -> bytes:
    parts = [MAGIC]
    for table, data in inserts:
        name = table.encode()
        parts += [_HEADER.pack(len(name), len(data)), name, data]
    return b"".join(parts)


def decode(blob: bytes) -> list[Insert]:
    if not blob.startswith(MAGIC):
        raise ValueError("not a journal entry")
    inserts, at = [], len(MAGIC)
    while at < len(blob):
        if len(blob) - at < _HEADER.size:
            raise ValueError("a truncated journal entry")
        name_length, data_length = _HEADER.unpack_from(blob, at)
        at += _HEADER.size
        name = blob[at : at + name_length]
        at += name_length
        data = blob[at : at + data_length]
        if len(name) != name_length or len(data) != data_length:
            raise ValueError("a truncated journal entry")
        at += data_length
        inserts.append((name.decode(), data))
    return inserts


class Journal:
    def __init__(self, directory: Path, max_age: float = MAX_AGE_SECONDS) -> None:
        self.directory = directory
        self.max_age = max_age
        directory.mkdir(parents=True, exist_ok=True)
        # Entries are this process's alone: read once, then kept in step here.
        self._open: dict[str, Path] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)  # died while writing it: its insert never began
            elif path.name.endswith(SUFFIX):
                self._open[Entry(path, []).key] = path

    def begin(self, inserts: Sequence[Insert], key: str | None = None) -> str:
        """Keep an insert's bytes until :meth:`end`; the same bytes again keep one entry.
        ``key``: their :func:`key_of`, when the caller has it already (hashing a batch once)."""
        key = key or key_of(inserts)
        if key in self._open:
            return key
        path = self.directory / f"{time.time_ns()}-{key}{SUFFIX}"
        scratch = path.with_suffix(".tmp")
        scratch.write_bytes(encode(inserts))
        # A process killed after this line left a whole entry; before it, a .tmp file only.
        os.replace(scratch, path)
        self._open[key] = path
        return key

    def end(self, key: str) -> None:
        path = self._open.pop(key, None)
        if path is not None:
            path.unlink(missing_ok=True)

    def unfinished(self, besides: str | None = None) -> Iterator[Entry]:
        """The entries still open, oldest first (the one named ``besides`` left out); too old
        or unreadable ones are dropped with an error."""
        for key, path in sorted(self._open.items(), key=lambda item: item[1].name):
            if key == besides:
                continue
            entry = Entry(path, [])
            try:
                inserts = decode(path.read_bytes())
            except (OSError, ValueError) as exc:
                logger.error("%s: unreadable journal entry dropped: %s", path.name, exc)
                self.end(key)
                continue
            if entry.age > self.max_age:
                logger.error(
                    "%s: an insert that did not end %.0f s ago is not sent again (past "
                    "ClickHouse's deduplication window); statistics may miss its events",
                    path.name,
                    entry.age,
                )
                self.end(key)
                continue
            yield Entry(path, inserts)

    def __len__(self) -> int:
        return len(self._open)
