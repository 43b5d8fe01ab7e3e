"""``postline migrate``: apply the ClickHouse schema migrations."""

from __future__ import annotations

import click

from postline.common.clickhouse.client import connect
from postline.common.clickhouse.migrate import all_migrations, applied_versions, apply_migrations


@click.command("migrate")
@click.option(
    "--dsn",
    envvar="POSTLINE_CLICKHOUSE_DSN",
    required=True,
    help="chdb:///path (embedded) or http://host:8123 [env POSTLINE_CLICKHOUSE_DSN]",
)
@click.option("--retention-days", type=int, default=None, help="default: the policy's, or 40")
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
    """Apply the pending ClickHouse schema migrations (idempotent)."""
    client = connect(dsn)
    if status:
        done = applied_versions(client)
        for m in all_migrations():
            click.echo(f"{m.version:04d}_{m.name}: {'applied' if m.version in done else 'pending'}")
        return
    if retention_days is None:
        retention_days = 40
        if policy_path:
            from postline.common.policy import load_policy

            retention_days = load_policy(policy_path).retention_days
    applied = apply_migrations(client, retention_days=retention_days)
    if applied:
        for m in applied:
            click.echo(f"applied {m.version:04d}_{m.name}")
    else:
        click.echo("schema is up to date")
