"""``daemon1521 config check``: validate a config file without starting anything."""

from __future__ import annotations

from pathlib import Path

import click
import msgspec

from daemon1521.commands.daemon_common import EXIT_USAGE, echo_json, fail
from daemon1521.config import ConfigError, default_config_path, load_config, port_warnings


@click.group("config")
def config() -> None:
    """Check the daemon's configuration."""


@config.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="The checked config, defaults filled in.")
def check(path: Path | None, as_json: bool) -> None:
    """Check PATH (default: /etc/daemon1521/daemon1521.toml) and say what it sets up.

    The checks are the ones `daemon1521 run` makes before it starts. Every
    problem names the file, the key and what is wrong; a line whose device
    is not there now is a warning (on stderr), not a problem. Exit codes:
    0 valid, 2 invalid or unreadable.
    """
    file = path or default_config_path()
    try:
        loaded = load_config(file)
    except ConfigError as exc:
        fail(f"config check: {exc}", EXIT_USAGE)
    for warning in port_warnings(loaded):
        click.echo(f"daemon1521 config check: warning: {file}: {warning}", err=True)
    if as_json:
        echo_json(msgspec.to_builtins(loaded, enc_hook=str))
        return
    click.echo(f"{file}: OK")
    for line in loaded.lines:
        label = f" ({line.label})" if line.label else ""
        rings = f", answers after {line.rings} ring(s)" if line.role != "outbound" else ""
        click.echo(
            f"  line {line.name}: {line.port}, {line.role}, profile {line.profile}{rings}{label}"
        )
    click.echo(f"  store: {loaded.store}")
    click.echo(f"  prompts: {loaded.prompts} ({loaded.language})")
    click.echo(f"  control socket: {loaded.control.socket}")
