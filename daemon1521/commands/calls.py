"""``daemon1521 calls``: recent call records, masked, from the running daemon."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import click

from daemon1521.commands.daemon_common import call, client_options, echo_json, socket_for, table


@click.command()
@click.option("--since", help="An ISO 8601 time, or a span back from now: 30m, 2h, 1d.")
@click.option("--line", help="Only this line's calls.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
@client_options
@click.option("--json", "as_json", is_flag=True, help="The records as JSON.")
def calls(
    since: str | None,
    line: str | None,
    limit: int,
    config_path: Path | None,
    socket_path: Path | None,
    as_json: bool,
) -> None:
    """List recent calls, newest first. Caller numbers and bill IDs are masked.

    Exit codes: 0 listed, 1 the daemon refused (e.g. a bad --since), 2 bad
    config, 3 the daemon is not running.
    """
    args: dict[str, object] = {"limit": limit}
    if since:
        args["since"] = since
    if line:
        args["line"] = line
    reply = call("calls", socket_for(config_path, socket_path), "calls", **args)
    records = reply["calls"]
    if as_json:
        echo_json(records)
        return
    if not records:
        click.echo("no calls")
        return
    rows = [
        [
            r["id"],
            r["line"],
            _local(r["started_at"]),
            f"{r['duration']:.0f} s" if r.get("duration") is not None else "in progress",
            r.get("caller"),
            r.get("bill_id"),
            r.get("outcome"),
            r.get("last_state"),
            _payment(r.get("payments") or []),
        ]
        for r in records
    ]
    headers = [
        "ID", "LINE", "STARTED", "LENGTH", "CALLER", "BILL ID", "OUTCOME", "LAST STATE", "PAYMENT"
    ]  # fmt: skip
    click.echo(table(headers, rows))


def _payment(attempts: list[dict[str, object]]) -> str | None:
    """The call's last payment attempt: result, masked card, tracking number."""
    if not attempts:
        return None
    last = attempts[-1]
    parts = [str(last.get("result")), str(last.get("card") or "")]
    if last.get("tracking"):
        parts.append(f"#{last['tracking']}")
    return " ".join(p for p in parts if p)


def _local(stamp: str | None) -> str | None:
    if not stamp:
        return None
    return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S")
