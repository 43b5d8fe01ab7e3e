"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, once each.

A file holds ``;``-terminated statements (``--`` comment lines are ignored);
``{retention_days}`` is replaced by the policy's retention. Applied versions are recorded in
``postline.schema_migrations``.

ClickHouse DDL is not transactional, so each statement is recorded in
``postline.schema_migration_steps`` as soon as it succeeded: a run that failed half-way (a
timeout, a full disk) resumes at the failed statement instead of replaying the ones before it.
A migration is recorded as applied only after all its statements ran.

Tables created with a ``TTL ... INTERVAL {retention_days} DAY`` clause follow the retention:
``apply_retention`` changes the TTL of those already created when the retention changed.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from postline.common.clickhouse.client import DATABASE

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS = 40

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_CREATE_TABLE = re.compile(r"^CREATE TABLE (?:IF NOT EXISTS )?(\S+)", re.IGNORECASE)
# The TTL clause of a CREATE TABLE, up to the interval that carries the retention.
_RETENTION_TTL = re.compile(r"\bTTL\s+(.+?INTERVAL\s+\{retention_days\}\s+DAY)", re.DOTALL)
_TTL_DAYS = re.compile(r"\bTTL\b.*?toIntervalDay\((\d+)\)", re.DOTALL)


def _split(sql: str) -> list[str]:
    lines = [ln for ln in sql.splitlines() if not ln.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"

    def statements(self, retention_days: int) -> list[str]:
        return _split(self.sql.replace("{retention_days}", str(retention_days)))

    def retention_ttls(self) -> dict[str, str]:
        """Tables this migration creates with a retention TTL: name -> TTL expression, with
        ``{retention_days}`` still in it."""
        found = {}
        for statement in _split(self.sql):
            table = _CREATE_TABLE.match(statement)
            ttl = _RETENTION_TTL.search(statement)
            if table and ttl:
                found[table[1]] = " ".join(ttl[1].split())
        return found


@dataclass(frozen=True)
class MigrationStatus:
    migration: Migration
    applied: bool
    steps_done: int
    steps: int

    @property
    def state(self) -> str:
        if self.applied:
            return "applied"
        if self.steps_done:
            return f"partial ({self.steps_done}/{self.steps} statements)"
        return "pending"


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


def _ensure_tables(client: Client) -> None:
    client.command(f"CREATE DATABASE IF NOT EXISTS {DATABASE}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migrations "
        "(version UInt32, name String, applied_at DateTime64(3) DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY version"
    )
    client.command(
        f"CREATE TABLE IF NOT EXISTS {DATABASE}.schema_migration_steps "
        "(version UInt32, step UInt32, applied_at DateTime64(3) DEFAULT now64(3)) "
        "ENGINE = MergeTree ORDER BY (version, step)"
    )


def applied_versions(client: Client) -> set[int]:
    _ensure_tables(client)
    rows = client.query(f"SELECT version FROM {DATABASE}.schema_migrations").result_rows
    return {int(r[0]) for r in rows}


def _steps_done(client: Client, version: int) -> set[int]:
    rows = client.query(
        f"SELECT step FROM {DATABASE}.schema_migration_steps WHERE version = {{v:UInt32}}",
        parameters={"v": version},
    ).result_rows
    return {int(r[0]) for r in rows}


def pending_migrations(client: Client) -> list[Migration]:
    done = applied_versions(client)
    return [m for m in all_migrations() if m.version not in done]


def migration_status(client: Client) -> list[MigrationStatus]:
    done = applied_versions(client)
    return [
        MigrationStatus(
            m,
            m.version in done,
            len(_steps_done(client, m.version)) if m.version not in done else 0,
            len(m.statements(DEFAULT_RETENTION_DAYS)),
        )
        for m in all_migrations()
    ]


def apply_migrations(
    client: Client, *, retention_days: int = DEFAULT_RETENTION_DAYS, target: int | None = None
) -> list[Migration]:
    """Apply every pending migration up to ``target`` (all by default); returns those applied."""
    applied = []
    for migration in pending_migrations(client):
        if target is not None and migration.version > target:
            break
        done = _steps_done(client, migration.version)
        if done:
            logger.info("%s resumes after %d statements", migration.label, len(done))
        for step, statement in enumerate(migration.statements(retention_days)):
            if step in done:
                continue
            client.command(statement)
            client.insert(
                f"{DATABASE}.schema_migration_steps",
                [[migration.version, step]],
                column_names=["version", "step"],
            )
        client.insert(
            f"{DATABASE}.schema_migrations",
            [[migration.version, migration.name]],
            column_names=["version", "name"],
        )
        logger.info("%s applied", migration.label)
        applied.append(migration)
    return applied


def retention_tables(client: Client) -> dict[str, str]:
    """Tables of applied migrations that follow the retention: name -> TTL template.

    A later migration that recreates a table (same name) supersedes the earlier TTL."""
    done = applied_versions(client)
    tables: dict[str, str] = {}
    for migration in all_migrations():
        if migration.version in done:
            tables.update(migration.retention_ttls())
    return tables


def current_retention(client: Client, table: str) -> int | None:
    database, _, name = table.partition(".")
    rows = client.query(
        "SELECT engine_full FROM system.tables WHERE database = {d:String} AND name = {n:String}",
        parameters={"d": database, "n": name},
    ).result_rows
    if not rows:
        return None
    days = _TTL_DAYS.search(str(rows[0][0]))
    return int(days[1]) if days else None


def apply_retention(client: Client, retention_days: int) -> list[str]:
    """Set the TTL of every retention-following table to ``retention_days`` where it differs;
    returns the tables changed. ClickHouse then drops rows past the new TTL in the background.
    """
    changed = []
    for table, template in sorted(retention_tables(client).items()):
        if current_retention(client, table) in (None, retention_days):
            continue
        ttl = template.replace("{retention_days}", str(retention_days))
        client.command(f"ALTER TABLE {table} MODIFY TTL {ttl}")
        logger.info("%s retention set to %d days", table, retention_days)
        changed.append(table)
    return changed
