"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, once each.

A file holds statements separated by lines of ``;``-terminated SQL; ``{retention_days}`` is
replaced by the policy's retention. Applied versions are recorded in
``postline.schema_migrations``; a migration is recorded only after all its statements ran.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources

from clickhouse_connect.driver.client import Client

from postline.common.clickhouse.client import DATABASE

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    def statements(self, retention_days: int) -> list[str]:
        text = self.sql.replace("{retention_days}", str(retention_days))
        lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
        return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def all_migrations() -> list[Migration]:
    found = []
    for entry in resources.files("postline.common.clickhouse.migrations").iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise RuntimeError(f"duplicate migration versions: {versions}")
    return found


def _ensure_table(client: Client) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )


def applied_versions(client: Client) -> set[int]:
    _ensure_table(client)
    rows = client.query(f"SELECT version FROM {DATABASE}.schema_migrations").result_rows
    return {int(r[0]) for r in rows}


def pending_migrations(client: Client) -> list[Migration]:
    done = applied_versions(client)
    return [m for m in all_migrations() if m.version not in done]


def apply_migrations(
    client: Client, *, retention_days: int = 40, target: int | None = None
) -> list[Migration]:
    """Apply every pending migration up to ``target`` (all by default); returns those applied."""
    applied = []
    for migration in pending_migrations(client):
        if target is not None and migration.version > target:
            break
        for statement in migration.statements(retention_days):
            client.command(statement)
        client.insert(
            f"{DATABASE}.schema_migrations",
            [[migration.version, migration.name]],
            column_names=["version", "name"],
        )
        logger.info("%04d_%s applied", migration.version, migration.name)
        applied.append(migration)
    return applied
