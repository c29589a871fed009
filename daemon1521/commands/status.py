"""``daemon1521 status``: every line at a glance, from the running daemon."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from daemon1521.commands.daemon_common import call, client_options, echo_json, socket_for, table

STATE_LABELS = {
    "idle": "idle",
    "in_call": "in call",
    "busy": "busied out",
    "out_of_service": "out of service",
    "recovering": "recovering",
    "starting": "starting",
    "stopped": "stopped",
}


@click.command()
@client_options
@click.option("--json", "as_json", is_flag=True, help="The daemon's reply as JSON.")
def status(config_path: Path | None, socket_path: Path | None, as_json: bool) -> None:
    """Show each line: state, caller (masked), flow state, modem, calls today, last error.

    Exit codes: 0 shown, 1 the daemon failed to answer, 2 bad config,
    3 the daemon is not running.
    """
    reply = call("status", socket_for(config_path, socket_path), "status")
    if as_json:
        echo_json({k: v for k, v in reply.items() if k != "ok"})
        return
    click.echo(render(reply))


def render(reply: dict[str, Any]) -> str:
    rows = []
    for line in reply["lines"]:
        modem = line.get("modem") or {}
        state = STATE_LABELS.get(line["state"], line["state"])
        if line.get("admin") == "busy" and line["state"] != "busy":
            state += " (busy requested)"
        if line.get("retry_in") is not None:
            state += f", retry in {line['retry_in']:g} s"
        rows.append(
            [
                line["name"],
                state,
                line.get("caller"),
                line.get("flow_state"),
                " ".join(filter(None, [modem.get("manufacturer"), modem.get("model")])) or None,
                modem.get("firmware"),
                line["calls_today"],
                line.get("last_error"),
            ]
        )
    headers = ["LINE", "STATE", "CALLER", "FLOW", "MODEM", "FIRMWARE", "TODAY", "LAST ERROR"]
    totals = reply.get("totals", {})
    footer = f"{reply.get('status', '')}; {totals.get('calls_today', 0)} call(s) today"
    store = reply.get("store") or {}
    if store.get("problem"):
        saved = f", {store['spooled']} in the spool" if store.get("spooled") else ""
        footer += f"\nSTORE: {store['problem']} ({store.get('queued', 0)} record(s) queued{saved})"
    return f"{table(headers, rows)}\n\n{footer}"
