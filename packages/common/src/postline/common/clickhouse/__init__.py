"""ClickHouse through clickhouse-connect: a client from a DSN, and versioned migrations."""

from postline.common.clickhouse.client import connect
from postline.common.clickhouse.migrate import apply_migrations, pending_migrations

__all__ = ["apply_migrations", "connect", "pending_migrations"]
