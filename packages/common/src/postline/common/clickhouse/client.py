"""A ClickHouse client from a DSN.

``chdb:///abs/path`` or ``chdb://./relative/path`` is the embedded engine (one process per data
path: chdb locks it), ``http(s)://user:pass@host:8123`` a server or cluster. The SQL is the same.
"""

from __future__ import annotations

from pathlib import Path

import clickhouse_connect
from clickhouse_connect.driver.client import Client

DATABASE = "postline"


def normalize_dsn(dsn: str) -> str:
    """Make a chdb DSN absolute (``chdb://./x`` means ./x relative to the working directory)."""
    if not dsn.startswith("chdb://"):
        return dsn
    path = dsn.removeprefix("chdb://")
    if not path:
        raise ValueError("a chdb DSN needs a data path, e.g. chdb://./var/clickhouse/reports")
    absolute = Path(path).expanduser().resolve()
    absolute.mkdir(parents=True, exist_ok=True)
    return f"chdb://{absolute}"


def connect(dsn: str) -> Client:
    client = clickhouse_connect.get_client(dsn=normalize_dsn(dsn))
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    return client
