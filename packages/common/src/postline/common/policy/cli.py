"""``postline policy``: check a policy file, hash a secret for it."""

from __future__ import annotations

import sys

import click

from postline.common.policy.loader import PolicyError, load_policy
from postline.common.policy.secrets import hash_secret


@click.group(name="policy")
def command() -> None:
    """Work with the policy file (postline.yaml)."""


@command.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
def check(file: str) -> None:
    """Validate FILE; print every problem with its key and line."""
    try:
        policy = load_policy(file)
    except PolicyError as exc:
        for error in exc.errors:
            click.echo(str(error), err=True)
        sys.exit(1)
    click.echo(f"{file}: ok ({len(policy.servers)} servers, {policy.api_user_count} api users)")


@command.command(name="hash")
def hash_command() -> None:
    """Read a secret (stdin, or a hidden prompt on a terminal) and print its argon2 form."""
    stdin = click.get_text_stream("stdin")
    if stdin.isatty():
        secret = click.prompt("Secret", hide_input=True, confirmation_prompt=True)
    else:
        # A trailing newline comes from `echo` or a file, not from the secret.
        secret = stdin.read().rstrip("\r\n")
    if not secret:
        raise click.UsageError("the secret is empty")
    click.echo(f'{{argon2: "{hash_secret(secret)}"}}')
