"""The control socket: JSON lines over a Unix socket, for the ``daemon1521`` CLI.

One request per line, one reply per line, any number per connection::

    -> {"cmd": "status"}
    <- {"ok": true, "daemon": {...}, "lines": [...], "totals": {...}}
    -> {"cmd": "line.busy", "line": "line2"}
    <- {"ok": false, "error": "unknown_line", "message": "no line named ..."}

The status reply's ``store`` is the database's health: ``problem`` (one line,
null when writes go through), ``queued`` records waiting to be written, and
how many of them are ``spooled`` (safe across a restart).

An ``"id"`` in a request is echoed in its reply. The socket file is mode 0660
and group-owned (the config's ``control.group``), so operators in that group
use the CLI without root. Nothing sensitive crosses it: replies carry masked
caller numbers and bill IDs, never digits a caller typed; an unexpected
failure is answered with a generic message (the detail goes to the log).

Every request is checked against its command's schema (``control_requests``)
before a handler sees it; at most ``MAX_CLIENTS`` connections are served at
once and a silent one is closed after ``IDLE_TIMEOUT``, so idle clients can
neither take every file descriptor nor starve the operator for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import socket
import stat
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from loguru import logger

from daemon1521.daemon.control_requests import REQUESTS, BadRequest, Envelope, parse_request
from daemon1521.logs import LogThrottle

SOCKET_MODE = 0o660
MAX_LINE = 64 * 1024
IDLE_TIMEOUT = 30.0
"""Real seconds a client connection may stay silent before it is closed."""
MAX_CLIENTS = 32
"""Connections served at once; one more is answered ``busy`` and closed."""
CLIENT_TIMEOUT = 30.0
"""Real seconds the CLI waits for a reply (a reset may take a few seconds)."""

Reply = dict[str, Any]
Handler = Callable[[Mapping[str, Any]], Awaitable[Reply]]


class RequestError(Exception):
    """A request the daemon refuses; ``code`` is machine-readable, ``message`` for people."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ControlSocketError(Exception):
    """The control socket cannot be set up (in use, no permission, unknown group)."""


class ControlServer:
    """Serves ``handlers`` (command name -> coroutine) on a Unix socket."""

    def __init__(
        self,
        path: Path,
        handlers: Mapping[str, Handler],
        group: str | None = None,
        schemas: Mapping[str, type[Envelope]] = REQUESTS,
    ) -> None:
        self.path = Path(path)
        self.handlers = dict(handlers)
        self.schemas = dict(schemas)
        self.group = group
        self._warnings = LogThrottle()
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._inode: int | None = None

    async def start(self) -> None:
        gid = _group_id(self.group) if self.group is not None else None
        self._clear_stale()
        old_umask = os.umask(0o117)  # the socket is born 0660, never wider
        try:
            # the backlog bounds how many connections one wake-up accepts
            # before any is refused: a burst cannot run the descriptors out
            self._server = await asyncio.start_unix_server(
                self._client, path=str(self.path), limit=MAX_LINE, backlog=MAX_CLIENTS
            )
        except OSError as exc:
            raise ControlSocketError(f"cannot listen on {self.path}: {exc.strerror}") from None
        finally:
            os.umask(old_umask)
        try:
            os.chmod(self.path, SOCKET_MODE)
            if gid is not None:
                os.chown(self.path, -1, gid)
        except OSError as exc:
            await self.close()
            raise ControlSocketError(
                f"cannot give {self.path} to group {self.group}: {exc.strerror}"
            ) from None
        self._inode = os.stat(self.path).st_ino
        logger.info("control socket listening on {}", self.path)

    @property
    def serving(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._clients):
            task.cancel()
        await asyncio.gather(*self._clients, return_exceptions=True)
        if server is not None:
            await server.wait_closed()
        with contextlib.suppress(OSError):
            if self._inode is not None and os.stat(self.path).st_ino == self._inode:
                self.path.unlink()
        self._inode = None

    def _clear_stale(self) -> None:
        """Remove a socket left by a daemon that died; refuse if one still answers."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(mode):
            raise ControlSocketError(f"{self.path} exists and is not a socket")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(self.path))
        except OSError:
            self.path.unlink(missing_ok=True)
            return
        finally:
            probe.close()
        raise ControlSocketError(f"another daemon is already listening on {self.path}")

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        if len(self._clients) >= MAX_CLIENTS:
            self._warnings.warning(
                "busy", "control: {} clients connected; refusing more", MAX_CLIENTS
            )
            await _send(writer, _error("busy", "too many control clients; try again shortly"))
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            return
        self._clients.add(task)
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
                except (TimeoutError, ConnectionError):
                    return
                except (asyncio.LimitOverrunError, ValueError):
                    await _send(
                        writer, _error("too_long", f"a request is at most {MAX_LINE} bytes")
                    )
                    return
                if not raw:
                    return
                if not raw.strip():
                    continue
                reply = await self.handle_line(raw)
                if not await _send(writer, reply):
                    return
        finally:
            self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def handle_line(self, raw: bytes) -> Reply:
        """One request line in, one reply out (never raises)."""
        try:
            request, checked = parse_request(raw, self.schemas)
        except BadRequest as exc:
            return _error("bad_request", str(exc))
        reply = await self.dispatch(request)
        if checked.id is not None:
            reply["id"] = checked.id
        return reply

    async def dispatch(self, request: Mapping[str, Any]) -> Reply:
        command = request["cmd"]
        handler = self.handlers.get(command)
        if handler is None:
            known = ", ".join(sorted(self.handlers))
            return _error("unknown_command", f"unknown command {command!r} (known: {known})")
        try:
            reply = await handler(request)
        except RequestError as exc:
            return _error(exc.code, exc.message)
        except Exception as exc:
            logger.opt(exception=exc).error("control: {} failed", command)
            return _error("internal", f"{command} failed inside the daemon; see its log")
        return {"ok": True, **reply}


def _error(code: str, message: str) -> Reply:
    return {"ok": False, "error": code, "message": message}


async def _send(writer: asyncio.StreamWriter, reply: Reply) -> bool:
    try:
        writer.write(json.dumps(reply, ensure_ascii=False).encode() + b"\n")
        await writer.drain()
    except (ConnectionError, OSError):
        return False
    return True


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ControlSocketError(f"control.group: no group named {group!r}") from None


# -- the client side (the CLI) -------------------------------------------------


class DaemonNotRunning(Exception):
    """Nothing answers on the control socket."""


class ControlClientError(Exception):
    """The daemon answered, but not with a usable reply."""


def request(path: Path | str, command: str, timeout: float = CLIENT_TIMEOUT, **args: Any) -> Reply:
    """Send one request and return the reply (``ok`` true or false).

    Raises :class:`DaemonNotRunning` when no daemon listens on ``path``, and
    :class:`ControlClientError` for permission problems or a broken reply.
    """
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        try:
            sock.connect(str(path))
        except OSError as exc:
            raise _connect_error(path, exc) from None
        lost: OSError | None = None
        try:
            try:
                sock.sendall(_encode(command, args))
            except (BrokenPipeError, ConnectionResetError) as exc:
                # a daemon at its client limit answers "busy" and closes
                # before reading the request: its reply is still to be read
                lost = exc
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except TimeoutError:
            raise ControlClientError(f"the daemon did not answer within {timeout:g} s") from None
        except OSError as exc:
            raise ControlClientError(f"lost the connection to the daemon: {exc}") from None
        if lost is not None and not data:
            raise ControlClientError(f"lost the connection to the daemon: {lost}")
    finally:
        sock.close()
    return _decode(data)


async def arequest(
    path: Path | str, command: str, timeout: float = CLIENT_TIMEOUT, **args: Any
) -> Reply:
    """:func:`request` for code already inside an event loop."""
    try:
        reader, writer = await asyncio.open_unix_connection(str(path), limit=MAX_LINE * 16)
    except OSError as exc:
        raise _connect_error(path, exc) from None
    try:
        writer.write(_encode(command, args))
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            await writer.drain()  # closed unread (busy): the reply may still be there
        data = await asyncio.wait_for(reader.readline(), timeout)
    except TimeoutError:
        raise ControlClientError(f"the daemon did not answer within {timeout:g} s") from None
    except OSError as exc:
        raise ControlClientError(f"lost the connection to the daemon: {exc}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return _decode(data)


def _connect_error(path: Path | str, exc: OSError) -> Exception:
    if isinstance(exc, FileNotFoundError | ConnectionRefusedError):
        return DaemonNotRunning(f"the daemon is not running (nothing listens on {path})")
    if isinstance(exc, PermissionError):
        return ControlClientError(
            f"permission denied on {path}: run as root or as a member of the socket's group"
        )
    return DaemonNotRunning(f"cannot reach the daemon on {path}: {exc.strerror or exc}")


def _encode(command: str, args: Mapping[str, Any]) -> bytes:
    return json.dumps({"cmd": command, **args}).encode() + b"\n"


def _decode(data: bytes) -> Reply:
    if not data:
        raise ControlClientError("the daemon closed the connection without answering")
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlClientError("the daemon's reply is not JSON") from None
    if not isinstance(reply, dict) or "ok" not in reply:
        raise ControlClientError("the daemon's reply has no 'ok' field")
    return reply
