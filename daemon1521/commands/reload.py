"""``daemon1521 reload``: new prompts and IVR settings for the next calls."""

from __future__ import annotations

from pathlib import Path

import click

from daemon1521.commands.daemon_common import call, client_options, echo_json, socket_for


@click.command()
@client_options
@click.option("--json", "as_json", is_flag=True)
def reload(config_path: Path | None, socket_path: Path | None, as_json: bool) -> None:
    """Re-read prompts, IVR settings and log levels (as SIGHUP does); calls in progress
    keep the old ones.

    Exit codes: 0 reloaded, 1 refused (the new config or prompts are bad; the
    running ones are kept), 2 bad config, 3 the daemon is not running.
    """
    reply = call("reload", socket_for(config_path, socket_path), "reload")
    result = reply["reloaded"]
    if as_json:
        echo_json(result)
        return
    click.echo(f"reloaded: {result['prompts']} prompts and the IVR settings")
    for what in result.get("restart_needed", []):
        click.echo(f"note: {what} changed; that takes a restart")
