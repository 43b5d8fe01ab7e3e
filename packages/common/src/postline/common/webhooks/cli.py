"""``postline webhooks secret``: a new webhook secret in the Standard Webhooks form."""

from __future__ import annotations

import click

from postline.common.webhooks.signing import new_secret


@click.group(name="webhooks")
def command() -> None:
    """Webhook helpers."""


@command.command()
@click.option("--bytes", "size", default=32, show_default=True, type=click.IntRange(24, 64))
def secret(size: int) -> None:
    """Print a new secret (whsec_ and the base64 of random bytes) for a webhook or inbound
    endpoint: put it in the environment variable or file its policy entry's `secret` names,
    and give the receiving application the same string."""
    click.echo(new_secret(size))
