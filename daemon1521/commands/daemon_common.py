"""What the commands that talk to the running daemon share.

Finding the control socket: ``--socket`` (or ``$DAEMON1521_SOCKET``), else the
one the config file names, else the system socket, else the one an emulated
daemon run without a config listens on. Exit codes are the same for every
such command: 0 done, 1 the daemon refused or failed, 2 bad usage or config,
3 the daemon is not running.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from daemon1521.config import DEFAULT_SOCKET, ConfigError, default_config_path, load_config
from daemon1521.daemon.control import ControlClientError, DaemonNotRunning, Reply, request

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_RUNNING = 3
SOCKET_ENV = "DAEMON1521_SOCKET"

F = TypeVar("F", bound=Callable[..., Any])


def user_socket_path() -> Path:
    """Where a daemon run without a config (emulated, by a user) listens."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    base = Path(runtime) / "daemon1521" if runtime else Path(f"/tmp/daemon1521-{os.getuid()}")
    return base / "control.sock"


def client_options(func: F) -> F:
    """``--config`` and ``--socket``, as every client command takes them."""
    func = click.option(
        "--socket",
        "socket_path",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=SOCKET_ENV,
        help=f"The daemon's control socket (default: from the config). [env: {SOCKET_ENV}]",
    )(func)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Config file naming the socket. [default: /etc/daemon1521/daemon1521.toml]",
    )(func)


def socket_for(config_path: Path | None, socket_path: Path | None) -> Path:
    """The socket to talk to; exits 2 on a config that cannot be read."""
    if socket_path is not None:
        return socket_path
    path = config_path or default_config_path()
    if config_path is not None or path.exists():
        try:
            return load_config(path, require_lines=False, check_profiles=False).control.socket
        except ConfigError as exc:
            fail(str(exc), EXIT_USAGE)
    if not DEFAULT_SOCKET.exists() and user_socket_path().exists():
        return user_socket_path()
    return DEFAULT_SOCKET


def call(name: str, socket: Path, command: str, **args: Any) -> Reply:
    """One request; exits 3 when the daemon is not running, 1 when it refuses."""
    try:
        reply = request(socket, command, **args)
    except DaemonNotRunning as exc:
        fail(f"{name}: {exc}", EXIT_NOT_RUNNING)
    except ControlClientError as exc:
        fail(f"{name}: {exc}", EXIT_FAILED)
    if not reply.get("ok"):
        fail(f"{name}: {reply.get('message') or reply.get('error') or 'refused'}", EXIT_FAILED)
    return reply


def fail(message: str, code: int) -> NoReturn:
    click.echo(f"daemon1521 {message}", err=True)
    sys.exit(code)


def echo_json(data: Any) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain left-aligned columns; None shows as '-'."""
    cells = [[("-" if value is None else str(value)) for value in row] for row in rows]
    widths = [
        max([len(header), *(len(row[i]) for row in cells)]) for i, header in enumerate(headers)
    ]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(lines)
