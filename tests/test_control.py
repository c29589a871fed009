"""The control socket on its own: the protocol, the socket file, the client, masking,
and every CLI command's clear failure when no daemon runs."""

from __future__ import annotations

import json
import os
import socket
import stat
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from daemon1521.billing.store import CallRecord
from daemon1521.cli import main
from daemon1521.daemon.control import (
    ControlServer,
    ControlSocketError,
    DaemonNotRunning,
    RequestError,
    arequest,
    request,
)
from daemon1521.daemon.privacy import call_record, mask_bill_id, mask_caller


async def _echo(request: Any) -> dict[str, Any]:
    return {"echo": request.get("value")}


async def _refuse(request: Any) -> dict[str, Any]:
    raise RequestError("unknown_line", "no line named 'x'")


async def _crash(request: Any) -> dict[str, Any]:
    raise RuntimeError("secret 6037991234567890 inside")


HANDLERS = {"echo": _echo, "refuse": _refuse, "crash": _crash}


@pytest.fixture
async def server(tmp_path: Path):
    srv = ControlServer(tmp_path / "control.sock", HANDLERS, group=str(os.getgid()))
    await srv.start()
    yield srv
    await srv.close()


async def test_requests_and_replies_are_json_lines(server: ControlServer) -> None:
    reply = await arequest(server.path, "echo", value=5, id="r1")
    assert reply == {"ok": True, "echo": 5, "id": "r1"}
    refused = await arequest(server.path, "refuse")
    assert refused == {"ok": False, "error": "unknown_line", "message": "no line named 'x'"}
    unknown = await arequest(server.path, "dance")
    assert unknown["error"] == "unknown_command" and "echo" in unknown["message"]


async def test_a_failure_inside_is_answered_without_its_details(server: ControlServer) -> None:
    reply = await arequest(server.path, "crash")
    assert reply["ok"] is False and reply["error"] == "internal"
    assert "6037" not in json.dumps(reply) and "secret" not in json.dumps(reply)


async def test_several_requests_on_one_connection_and_bad_lines(server: ControlServer) -> None:
    import asyncio

    reader, writer = await asyncio.open_unix_connection(str(server.path))
    try:
        writer.write(b'{"cmd": "echo", "value": 1}\n\nnot json\n[1]\n{"cmd": "echo", "value": 2}\n')
        await writer.drain()
        replies = [json.loads(await reader.readline()) for _ in range(4)]
    finally:
        writer.close()
        await writer.wait_closed()
    assert replies[0]["echo"] == 1
    assert replies[1]["error"] == replies[2]["error"] == "bad_request"
    assert replies[3]["echo"] == 2


async def test_socket_file_is_0660_and_group_owned(server: ControlServer) -> None:
    info = os.stat(server.path)
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == os.getgid()


async def test_stale_socket_is_replaced_and_a_live_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))
    stale.close()  # a dead daemon's leftover
    first = ControlServer(path, HANDLERS)
    await first.start()
    try:
        second = ControlServer(path, HANDLERS)
        with pytest.raises(ControlSocketError, match="already listening"):
            await second.start()
        assert (await arequest(path, "echo", value=3))["echo"] == 3
    finally:
        await first.close()
    assert not path.exists()


async def test_unknown_group_is_a_clear_error(tmp_path: Path) -> None:
    srv = ControlServer(tmp_path / "c.sock", HANDLERS, group="no-such-group-1521")
    with pytest.raises(ControlSocketError, match="no group named 'no-such-group-1521'"):
        await srv.start()


def test_client_says_when_no_daemon_runs(tmp_path: Path) -> None:
    with pytest.raises(DaemonNotRunning, match="not running"):
        request(tmp_path / "none.sock", "status")


COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["lines", "busy", "line1"],
    ["lines", "free", "line1"],
    ["lines", "reset", "line1"],
    ["calls", "--since", "2h"],
    ["reload"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=[" ".join(a) for a in COMMANDS])
def test_every_command_exits_3_when_the_daemon_is_not_running(
    tmp_path: Path, args: list[str]
) -> None:
    result = CliRunner().invoke(main, [*args, "--socket", str(tmp_path / "gone.sock")])
    assert result.exit_code == 3
    assert "the daemon is not running" in result.output


def test_commands_read_the_socket_from_the_config(tmp_path: Path) -> None:
    config = tmp_path / "d.toml"
    config.write_text(f'[control]\nsocket = "{tmp_path / "from-config.sock"}"\n')
    result = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert result.exit_code == 3
    assert "from-config.sock" in result.output
    config.write_text("[control]\nsockett = 1\n")
    bad = CliRunner().invoke(main, ["status", "--config", str(config)])
    assert bad.exit_code == 2 and "control.sockett: unknown key" in bad.output


# -- masking ------------------------------------------------------------------------


def test_masks() -> None:
    assert mask_caller("09121234567") == "0912*****67"
    assert mask_caller("2188001001") == "218*****01"
    assert mask_caller("1234") == "**34"
    assert mask_caller("7") == "*"
    assert mask_caller(None) is None
    assert mask_bill_id("1234567890123") == "*********0123"


@given(st.text(alphabet="0123456789", min_size=1, max_size=20))
def test_a_masked_caller_keeps_its_length_and_hides_at_least_half(number: str) -> None:
    masked = mask_caller(number)
    assert masked is not None and len(masked) == len(number)
    shown = sum(ch.isdigit() for ch in masked)
    assert shown <= 6 and masked.count("*") >= max(1, len(number) // 2)


def test_call_records_cross_the_socket_masked() -> None:
    start = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)
    record = CallRecord(
        id=7,
        line="line1",
        caller_number="09121234567",
        started_at=start,
        answered_at=start,
        ended_at=start + timedelta(seconds=42),
        states=("welcome", "ask_bill"),
        last_state="ask_bill",
        bill_id="1234567890123",
        amount_announced=None,
        outcome="hung_up",
        reason="card 6037991234567890 refused",
    )
    shown = call_record(record)
    text = json.dumps(shown)
    assert "09121234567" not in text and "1234567890123" not in text
    assert "6037991234567890" not in text
    assert shown["duration"] == 42.0 and shown["caller"] == "0912*****67"


def test_a_reply_sent_before_the_daemon_closed_unread_is_still_read(tmp_path: Path) -> None:
    # A daemon at its client limit answers "busy" and closes without reading
    # the request; the client's send then fails, but the answer is there.
    path = tmp_path / "busy.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def answer_and_close() -> None:
        conn, _ = listener.accept()
        conn.sendall(b'{"ok": false, "error": "busy", "message": "too many clients"}\n')
        conn.close()

    server = threading.Thread(target=answer_and_close)
    server.start()
    try:
        # far more than a socket buffer holds: the send is cut off mid-way
        reply = request(path, "status", timeout=5, pad="x" * 4_000_000)
    finally:
        server.join()
        listener.close()
    assert reply == {"ok": False, "error": "busy", "message": "too many clients"}
