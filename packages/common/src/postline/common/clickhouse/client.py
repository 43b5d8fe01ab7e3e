"""A ClickHouse client from a DSN.

``chdb:///abs/path`` or ``chdb://./relative/path`` is the embedded engine (one process per data
path: chdb locks it), ``http(s)://user:pass@host:8123`` a server or cluster. The SQL is the same.

clickhouse-connect is the ``clickhouse`` extra of postline-common and chdb its ``chdb`` extra:
the services that never touch ClickHouse (ingress, scheduler, sender) are installed without
them, so this module imports them only when a client is made.
"""

from __future__ import annotations

from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

DATABASE = "postline"


class ClickHouseUnavailable(RuntimeError):
    """ClickHouse support (or the embedded engine a chdb:// DSN needs) is not installed."""


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
    try:
        import clickhouse_connect
    except ModuleNotFoundError as exc:
        raise ClickHouseUnavailable(
            "ClickHouse support is not installed here: install postline-common[clickhouse] "
            "(the reports and bounce images have it)"
        ) from exc
    if dsn.startswith("chdb://") and find_spec("chdb") is None:
        raise ClickHouseUnavailable(
            "a chdb:// DSN needs the embedded engine: install postline-common[chdb], or point "
            "POSTLINE_CLICKHOUSE_DSN at a ClickHouse server (http://host:8123)"
        )
    client = clickhouse_connect.get_client(dsn=normalize_dsn(dsn))
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    return client
