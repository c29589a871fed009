"""``daemon1521 lines busy|free|reset LINE``: an operator's hands on one line."""

from __future__ import annotations

from pathlib import Path

import click

from daemon1521.commands.daemon_common import call, client_options, echo_json, socket_for
from daemon1521.commands.status import STATE_LABELS


@click.group()
def lines() -> None:
    """Busy out, return to service or reset a line of the running daemon.

    Exit codes: 0 done, 1 refused (unknown line, a call in progress...),
    2 bad config, 3 the daemon is not running.
    """


def _act(
    action: str,
    line: str,
    config_path: Path | None,
    socket_path: Path | None,
    as_json: bool,
    **args: object,
) -> None:
    reply = call(
        f"lines {action}", socket_for(config_path, socket_path), f"line.{action}", line=line, **args
    )
    snapshot = reply["line"]
    if as_json:
        echo_json(snapshot)
        return
    state = STATE_LABELS.get(snapshot["state"], snapshot["state"])
    if action == "free":
        # the request succeeded; the state is where the line is on its way back
        # (a failed line is retried now but is out of service until it answers)
        now = "" if snapshot["state"] == "idle" else f" (now {state}; see `daemon1521 status`)"
        click.echo(f"{snapshot['name']}: returned to service{now}")
        return
    pending = ""
    if action == "busy" and snapshot["state"] != "busy":
        pending = " (goes busy when the line is free)"
    click.echo(f"{snapshot['name']}: {state}{pending}")


@lines.command()
@click.argument("line")
@client_options
@click.option("--json", "as_json", is_flag=True)
def busy(line: str, config_path: Path | None, socket_path: Path | None, as_json: bool) -> None:
    """Busy LINE out: its modem goes off hook so the exchange hunts past it.

    A call in progress is finished first.
    """
    _act("busy", line, config_path, socket_path, as_json)


@lines.command()
@click.argument("line")
@client_options
@click.option("--json", "as_json", is_flag=True)
def free(line: str, config_path: Path | None, socket_path: Path | None, as_json: bool) -> None:
    """Return LINE to service (a line out of service is retried at once)."""
    _act("free", line, config_path, socket_path, as_json)


@lines.command()
@click.argument("line")
@click.option("--force", is_flag=True, help="Cut a call in progress.")
@client_options
@click.option("--json", "as_json", is_flag=True)
def reset(
    line: str, force: bool, config_path: Path | None, socket_path: Path | None, as_json: bool
) -> None:
    """Close LINE's port and open, identify and initialise its modem again."""
    _act("reset", line, config_path, socket_path, as_json, force=force)
