"""Fault: hostile clients on the control socket (issue 9, items 5 and 6).

Deep nesting, huge numbers and wrong-typed fields are answered ``bad_request``
with the field named; idle clients are capped and timed out, so they can
neither take every descriptor nor flood the log.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from loguru import logger

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.daemon import control
from daemon1521.daemon.control import ControlServer, arequest
from daemon1521.testbed.site import EmulatedSite, sample_bills


async def _echo(request: Any) -> dict[str, Any]:
    return {"echo": request.get("value")}


@pytest.fixture
def log_lines() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="DEBUG")
    yield lines
    logger.remove(sink)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[ControlServer]:
    srv = ControlServer(tmp_path / "c.sock", {"echo": _echo})
    await srv.start()
    yield srv
    await srv.close()


async def _exchange(path: Path, payload: bytes, then: bytes = b"") -> list[dict[str, Any]]:
    """Send raw bytes (and a follow-up line); every reply line until the server closes."""
    reader, writer = await asyncio.open_unix_connection(str(path), limit=1 << 20)
    try:
        writer.write(payload + then)
        await writer.drain()
        replies = []
        while len(replies) < 1 + bool(then):
            line = await asyncio.wait_for(reader.readline(), 10)
            if not line:
                break
            replies.append(json.loads(line))
        return replies
    finally:
        writer.close()
        await writer.wait_closed()


async def test_deep_nesting_is_a_bad_request_and_the_connection_goes_on(
    server: ControlServer, log_lines: list[str]
) -> None:
    for payload in (b"[" * 60_000 + b"\n", b'{"a":' * 12_000 + b"\n"):
        replies = await _exchange(server.path, payload, b'{"cmd": "echo", "value": 1}\n')
        assert replies[0]["ok"] is False and replies[0]["error"] == "bad_request"
        assert "nested" in replies[0]["message"]
        assert replies[1] == {"ok": True, "echo": 1}
    assert not [line for line in log_lines if "Traceback" in line or "ERROR" in line]


async def test_huge_numbers_and_ids_are_bad_requests(server: ControlServer) -> None:
    [reply] = await _exchange(server.path, b'{"cmd": "echo", "id": ' + b"9" * 5000 + b"}\n")
    assert reply["error"] == "bad_request" and "id" in reply["message"]


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[EmulatedSite]:
    async with EmulatedSite(
        tmp_path / "store.db",
        prompts=PromptLibrary(PromptCatalog("fa")),
        bills=sample_bills(),
    ) as running:
        yield running


async def test_every_daemon_request_is_checked_against_its_schema(
    site: EmulatedSite, log_lines: list[str]
) -> None:
    path = site.config.control.socket
    cases: list[tuple[dict[str, Any], str]] = [
        ({"cmd": "calls", "since": "99999999d"}, "since"),
        ({"cmd": "calls", "since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"cmd": "calls", "line": {"$ne": 1}}, "line"),
        ({"cmd": "calls", "limit": "10"}, "limit"),
        ({"cmd": "calls", "limit": 10**40}, "limit"),
        ({"cmd": "line.reset", "line": "line1", "force": "yes"}, "force"),
        ({"cmd": "line.busy", "line": ["line1"]}, "line"),
        ({"cmd": "status", "verbose": True}, "verbose"),
        ({"cmd": "stats", "id": {"x": 1}}, "id"),
    ]
    for request, field in cases:
        [reply] = await _exchange(path, json.dumps(request).encode() + b"\n")
        assert reply["ok"] is False, (request, reply)
        assert reply["error"] == "bad_request", (request, reply)
        assert field in reply["message"], (request, reply)
    assert site.line.state == "idle"  # the forced reset was never run
    good = await arequest(path, "calls", since="2h", limit=5, line="line1")
    assert good["ok"] is True
    assert not [line for line in log_lines if "Traceback" in line or "ERROR" in line]


async def test_idle_clients_are_closed(
    server: ControlServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert control.IDLE_TIMEOUT <= 30  # a silent client is let go within half a minute
    monkeypatch.setattr(control, "IDLE_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_unix_connection(str(server.path))
    try:
        assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
    finally:
        writer.close()
        await writer.wait_closed()


CHILD = """
import asyncio, resource, sys
from daemon1521.daemon.control import ControlServer
from daemon1521.logs import setup_logging

resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
setup_logging("DEBUG")

async def status(request):
    return {"status": "fine"}

async def main():
    server = ControlServer(sys.argv[1], {"status": status})
    await server.start()
    print("listening", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await server.close()

asyncio.run(main())
"""


def test_idle_clients_cannot_take_every_descriptor_or_flood_the_log(tmp_path: Path) -> None:
    path = tmp_path / "c.sock"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    clients: list[Any] = []
    try:
        assert child.stdout is not None and child.stdout.readline() == b"listening\n"
        import socket

        for _ in range(600):  # far more than the child's 256 descriptors
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            clients.append(sock)
            if not _connect(sock, path):
                break
        time.sleep(1.0)
        refused = _ask(path)
        assert refused["ok"] is False and refused["error"] == "busy", refused
        for sock in clients:
            sock.close()
        clients.clear()
        deadline = time.monotonic() + 10
        while (reply := _ask(path)).get("error") == "busy" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert reply == {"ok": True, "status": "fine"}
    finally:
        for sock in clients:
            sock.close()
        try:
            _, err = child.communicate(b"", timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            _, err = child.communicate()
    log = err.decode(errors="replace")
    assert child.returncode == 0, log
    assert "Traceback" not in log and "accept" not in log, log[:2000]
    assert len(log.splitlines()) < 10, log[:2000]


def _connect(sock: Any, path: Path) -> bool:
    """Connect, waiting while the listen backlog is full; False if it stays full."""
    sock.setblocking(False)  # a full backlog is EAGAIN, not a hang
    deadline = time.monotonic() + 2
    while True:
        try:
            sock.connect(str(path))
            return True
        except BlockingIOError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)


def _ask(path: Path) -> dict[str, Any]:
    try:
        return control.request(path, "status", timeout=5)
    except (control.ControlClientError, control.DaemonNotRunning) as exc:
        return {"ok": False, "error": "unreachable", "message": str(exc)}


def test_the_unit_gives_the_daemon_descriptors_to_spare() -> None:
    from tests.test_systemd_unit import unit_settings

    limit = int(unit_settings()["Service.LimitNOFILE"][0])
    assert limit >= 8 * control.MAX_CLIENTS + 256
