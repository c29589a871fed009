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
import stat
import sys
import tempfile
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


class RuntimeDirError(Exception):
    """The user's runtime directory is not ours alone; the message says why."""


def user_runtime_dir() -> Path:
    """Where a daemon run without a config (emulated, by a user) keeps its socket:
    ``$XDG_RUNTIME_DIR/daemon1521``, else ``daemon1521-<uid>`` in the temporary directory."""
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "daemon1521"
    return Path(tempfile.gettempdir()) / f"daemon1521-{os.getuid()}"


def user_socket_path() -> Path:
    """Where a daemon run without a config (emulated, by a user) listens."""
    return user_runtime_dir() / "control.sock"


def runtime_dir_problem(directory: Path) -> str | None:
    """Why ``directory`` cannot be trusted with our socket, or None (also when absent).

    Anyone who can write to it can swap the socket for one of their own that
    ``status`` would then believe; so it must be a real directory, ours, 0700,
    in a parent where others cannot rename it away.
    """
    try:
        info = os.lstat(directory)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"cannot be checked ({exc.strerror or exc})"
    if stat.S_ISLNK(info.st_mode):
        return "is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return "is not a directory"
    if info.st_uid != os.getuid():
        return f"belongs to uid {info.st_uid}, not to uid {os.getuid()}"
    if info.st_mode & 0o077:
        return f"has mode {stat.S_IMODE(info.st_mode):04o}; it must be 0700"
    parent = os.stat(directory.parent).st_mode
    if parent & 0o002 and not parent & stat.S_ISVTX:
        return f"is in {directory.parent}, which anyone may write to"
    return None


def make_user_runtime_dir() -> Path:
    """Create (or check) :func:`user_runtime_dir`: ours, 0700; :class:`RuntimeDirError` if not."""
    directory = user_runtime_dir()
    try:
        directory.mkdir(mode=0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise RuntimeDirError(f"cannot create {directory}: {exc.strerror or exc}") from None
    problem = runtime_dir_problem(directory)
    if problem is not None:
        raise RuntimeDirError(
            f"{directory} {problem}; remove it, or set XDG_RUNTIME_DIR to a directory of your own"
        )
    return directory


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
        problem = runtime_dir_problem(user_runtime_dir())
        if problem is not None:
            fail(f"{user_runtime_dir()} {problem}; not trusting the socket in it", EXIT_USAGE)
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
