"""``daemon1521 config check``: validate a config file without starting anything."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from daemon1521.commands.daemon_common import EXIT_USAGE, echo_json, fail
from daemon1521.config import ConfigError, default_config_path, load_config


@click.group("config")
def config() -> None:
    """Check the daemon's configuration."""


@config.command()
@click.argument("path", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="The checked config, defaults filled in.")
def check(path: Path | None, as_json: bool) -> None:
    """Check PATH (default: /etc/daemon1521/daemon1521.toml) and say what it sets up.

    Every problem names the file, the key and what is wrong. Exit codes:
    0 valid, 2 invalid or unreadable.
    """
    file = path or default_config_path()
    try:
        loaded = load_config(file)
    except ConfigError as exc:
        fail(f"config check: {exc}", EXIT_USAGE)
    if as_json:
        echo_json(_plain(dataclasses.asdict(loaded)))
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


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value
