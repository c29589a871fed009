"""The ``daemon1521`` command line: one click group, thin subcommands.

Subcommands live in :mod:`daemon1521.commands` and are imported only when
used, so ``daemon1521 status`` does not pay for numpy or the emulator.
"""

from __future__ import annotations

import importlib

import click

from daemon1521 import __version__
from daemon1521.logs import setup_logging

# name -> "module:attribute" of the click command or group.
COMMANDS: dict[str, str] = {
    "emulate": "daemon1521.commands.emulate:emulate",
    "demo": "daemon1521.commands.demo:demo",
    "modem": "daemon1521.commands.modem:modem",
    "bills": "daemon1521.commands.bills:bills",
    "cards": "daemon1521.commands.cards:cards",
    "say": "daemon1521.commands.say:say",
    "prompts": "daemon1521.commands.prompts:prompts",
    "run": "daemon1521.commands.run:run",
    "status": "daemon1521.commands.status:status",
    "lines": "daemon1521.commands.lines:lines",
    "calls": "daemon1521.commands.calls:calls",
    "reload": "daemon1521.commands.reload:reload",
    "config": "daemon1521.commands.config_cmd:config",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module_name, attr = COMMANDS[cmd_name].split(":")
            return getattr(importlib.import_module(module_name), attr)
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="daemon1521")
@click.option(
    "--log-level",
    default="INFO",
    show_default=True,
    type=click.Choice(["TRACE", "DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    envvar="DAEMON1521_LOG_LEVEL",
)
def main(log_level: str) -> None:
    """daemon1521: the 1521 bill-payment line on analog voice modems."""
    setup_logging(log_level)
