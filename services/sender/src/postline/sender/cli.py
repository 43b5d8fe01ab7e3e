"""``postline dkim``: make DKIM keys and the DNS records that publish them."""

from __future__ import annotations

import os
from pathlib import Path

import click

from postline.common.policy import DkimAlgorithm
from postline.sender import dkim_keys

_ALGORITHMS = [a.value for a in DkimAlgorithm]


@click.group(name="dkim")
def command() -> None:
    """DKIM signing keys."""


@command.command()
@click.argument("domain")
@click.option("--selector", default="s1", show_default=True, help="the DKIM selector (s=)")
@click.option(
    "--algorithm",
    type=click.Choice(_ALGORITHMS),
    default=DkimAlgorithm.RSA_SHA256.value,
    show_default=True,
)
@click.option(
    "--bits",
    type=click.IntRange(1024, 4096),
    default=dkim_keys.DEFAULT_RSA_BITS,
    show_default=True,
    help="RSA key size",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="where to write the private key (default: ./DOMAIN.SELECTOR.pem)",
)
@click.option("--force", is_flag=True, help="overwrite an existing key file")
def keygen(
    domain: str, selector: str, algorithm: str, bits: int, out: Path | None, force: bool
) -> None:
    """Make a key pair for DOMAIN: write the private key, print the DNS TXT record to
    publish and the policy entry that uses the key."""
    domain = domain.lower().removesuffix(".")
    algo = DkimAlgorithm(algorithm)
    path = (out or Path(f"{domain}.{selector}.pem")).resolve()
    if path.exists() and not force:
        raise click.UsageError(f"{path} exists (use --force to replace it)")
    pem = dkim_keys.generate(algo, bits)
    # Created private: the key must be readable by the sender only.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as file:
        file.write(pem)
    _print(domain, selector, algo, pem, path)


@command.command()
@click.argument("domain")
@click.argument("key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--selector", default="s1", show_default=True)
@click.option(
    "--algorithm",
    type=click.Choice(_ALGORITHMS),
    default=DkimAlgorithm.RSA_SHA256.value,
    show_default=True,
)
def record(domain: str, key: Path, selector: str, algorithm: str) -> None:
    """Print the DNS TXT record for an existing private KEY (PEM) of DOMAIN."""
    try:
        rec = dkim_keys.dns_record(domain, selector, DkimAlgorithm(algorithm), key.read_bytes())
    except ValueError as exc:
        raise click.UsageError(f"{key}: {exc}") from exc
    click.echo(rec.zone_line())


def _print(domain: str, selector: str, algo: DkimAlgorithm, pem: bytes, path: Path) -> None:
    rec = dkim_keys.dns_record(domain, selector, algo, pem)
    click.echo(f"private key: {path}  (mode 0600; mount it as a Secret, never commit it)")
    click.echo("")
    click.echo("DNS record to publish:")
    click.echo(rec.zone_line())
    click.echo("")
    click.echo("policy entry (servers.<name>.dkim):")
    click.echo(
        f"  - {{domain: {domain}, selector: {selector}, algorithm: {algo.value}, "
        f"key: {{file: {path}}}}}"
    )
