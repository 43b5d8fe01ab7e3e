"""``postline migrate``: apply the ClickHouse schema migrations."""

from __future__ import annotations

import click

from postline.common.clickhouse.client import ClickHouseUnavailable, connect
from postline.common.clickhouse.migrate import (
    DEFAULT_RETENTION_DAYS,
    apply_migrations,
    apply_retention,
    migration_status,
)


@click.command("migrate")
@click.option(
    "--dsn",
    envvar="POSTLINE_CLICKHOUSE_DSN",
    required=True,
    help="chdb:///path (embedded) or http://host:8123 [env POSTLINE_CLICKHOUSE_DSN]",
)
@click.option(
    "--retention-days",
    type=click.IntRange(min=1),
    default=None,
    help="default: the policy's retention_days, or 40",
)
@click.option(
    "--policy",
    "policy_path",
    envvar="POSTLINE_POLICY",
    type=click.Path(dir_okay=False),
    default=None,
    help="postline.yaml, for retention_days [env POSTLINE_POLICY]",
)
@click.option("--status", is_flag=True, help="list migrations and whether each is applied")
def command(dsn: str, retention_days: int | None, policy_path: str | None, status: bool) -> None:
    """Apply the pending ClickHouse schema migrations (idempotent).

    With --retention-days or a policy, tables that already exist get that retention too (their
    TTL is changed where it differs); without either, new tables get 40 days and existing
    ones keep theirs.
    """
    try:
        client = connect(dsn)
    except ClickHouseUnavailable as exc:
        raise click.ClickException(str(exc)) from exc
    if status:
        for entry in migration_status(client):
            click.echo(f"{entry.migration.label}: {entry.state}")
        return
    explicit = retention_days is not None or bool(policy_path)
    if retention_days is None:
        retention_days = DEFAULT_RETENTION_DAYS
        if policy_path:
            from postline.common.policy import load_policy

            retention_days = load_policy(policy_path).retention_days
    applied = apply_migrations(client, retention_days=retention_days)
    for m in applied:
        click.echo(f"applied {m.label}")
    changed = apply_retention(client, retention_days) if explicit else []
    for table in changed:
        click.echo(f"retention of {table} set to {retention_days} days")
    if not applied and not changed:
        click.echo("schema is up to date")
