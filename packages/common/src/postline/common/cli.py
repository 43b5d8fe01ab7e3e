"""The ``postline`` command.

Subcommand groups live next to what they operate on; each module exposes a click command or
group that is registered here. Services contribute their own groups through the
``postline.cli`` entry-point group, so this module never imports a service.
"""

from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

import click

# Modules of this package that contribute commands (attribute ``command``).
_COMMON_COMMANDS = (
    "postline.common.policy.cli",
    "postline.common.clickhouse.cli",
    "postline.common.webhooks.cli",
)


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="log at DEBUG level")
def main(verbose: bool) -> None:
    """Postline command line."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING)


def _register() -> None:
    for module_name in _COMMON_COMMANDS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        _add(module.command)
    for ep in entry_points(group="postline.cli"):
        _add(ep.load())


def _add(command: click.Command) -> None:
    existing = main.commands.get(command.name or "")
    if isinstance(existing, click.Group) and isinstance(command, click.Group):
        for sub in command.commands.values():
            existing.add_command(sub)
    else:
        main.add_command(command)


_register()
if __name__ == "__main__":
    main()
