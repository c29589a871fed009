"""``daemon1521 run``: the daemon itself, on configured lines or on emulated ones."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import click

from daemon1521.commands.daemon_common import (
    EXIT_FAILED,
    EXIT_USAGE,
    RuntimeDirError,
    fail,
    make_user_runtime_dir,
)
from daemon1521.config import (
    Config,
    ConfigError,
    ControlConfig,
    LineConfig,
    default_config,
    default_config_path,
    load_config,
)
from daemon1521.emulator.modem import available_personalities
from daemon1521.logs import setup_logging

DEFAULT_PERSONALITIES = ("conexant-cx93001", "usr-5637")


@click.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Config file. [default: /etc/daemon1521/daemon1521.toml, or $DAEMON1521_CONFIG]",
)
@click.option(
    "--emulated",
    type=click.IntRange(1, 64),
    metavar="N",
    help="Answer on N emulated lines (an exchange in this process) instead of the config's.",
)
@click.option(
    "--personality",
    "personalities",
    multiple=True,
    type=click.Choice(available_personalities()),
    help="Emulated modem personality, repeated to mix them.  [default: conexant-cx93001, usr-5637]",
)
@click.option(
    "--speed",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Emulated time: how many times faster than real time the lines run.",
)
@click.option(
    "--socket",
    "socket_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Control socket, instead of the config's.",
)
@click.option(
    "--store",
    "store_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Database, instead of the config's.",
)
def run(
    config_path: Path | None,
    emulated: int | None,
    personalities: tuple[str, ...],
    speed: float,
    socket_path: Path | None,
    store_path: Path | None,
) -> None:
    """Run the daemon: answer 1521 on every line until SIGTERM.

    Under systemd it reports readiness, line counts and watchdog pings, and
    reloads prompts and IVR settings on SIGHUP. Exit codes: 0 stopped
    cleanly, 1 could not start, 2 bad config or options.
    """
    if personalities and not emulated:
        fail("run: --personality needs --emulated", EXIT_USAGE)
    config, scratch = _config(config_path, emulated is not None)
    if store_path is not None:
        config = dataclasses.replace(config, store=store_path)
    if socket_path is not None:
        config = dataclasses.replace(
            config, control=dataclasses.replace(config.control, socket=socket_path)
        )
    root = click.get_current_context().find_root()
    fixed_level: str | None = None
    if root.get_parameter_source("log_level") not in (None, click.core.ParameterSource.DEFAULT):
        fixed_level = root.params["log_level"]
    else:
        setup_logging(config.logging.level, config.logging.modules)
    try:
        code = asyncio.run(_main(config, emulated, personalities, speed, fixed_level))
    finally:
        if scratch is not None:
            scratch.cleanup()
    sys.exit(code)


async def _main(
    config: Config,
    emulated: int | None,
    personalities: Sequence[str],
    speed: float,
    fixed_level: str | None,
) -> int:
    from daemon1521.clock import Clock, LoopClock
    from daemon1521.daemon.app import Daemon, StartupError
    from daemon1521.testbed.emulated import run_emulated

    def make(lines: Sequence[LineConfig] | None, clock: Clock) -> Daemon:
        return Daemon(config, clock=clock, lines=lines, log_level=fixed_level)

    try:
        if emulated:
            return await run_emulated(make, emulated, personalities or DEFAULT_PERSONALITIES, speed)
        return await make(None, LoopClock(speed)).run()
    except StartupError as exc:
        click.echo(f"daemon1521 run: cannot start: {exc}", err=True)
        return EXIT_FAILED


def _config(
    path: Path | None, emulated: bool
) -> tuple[Config, tempfile.TemporaryDirectory[str] | None]:
    """The config to run with, and a scratch directory to remove afterwards."""
    file = path or default_config_path()
    if path is not None or file.exists() or not emulated:
        try:
            return load_config(file, require_lines=not emulated), None
        except ConfigError as exc:
            hint = ""
            if path is None and not file.exists():
                hint = " (give --config, or see systemd/daemon1521.toml.example)"
            fail(f"run: {exc}{hint}", EXIT_USAGE)
    # emulated, no config: a scratch store, and a socket the CLI finds by itself
    try:
        socket = make_user_runtime_dir() / "control.sock"
    except RuntimeDirError as exc:
        fail(f"run: {exc}", EXIT_FAILED)
    scratch = tempfile.TemporaryDirectory(prefix="daemon1521-run-")
    config = default_config(
        store=Path(scratch.name) / "daemon1521.db", control=ControlConfig(socket=socket)
    )
    return config, scratch
