"""``daemon1521 emulate`` as an operator runs it: ptys announced, calls placed, outcomes told.

The command runs as a subprocess at 20x. A tiny raw client (no driver) opens
the announced ptys the way minicom would, switches caller ID on, and sees RING
and the caller's number arrive; it answers the ``--call`` so that its outcome
line says ``answered``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import tty
from pathlib import Path

from tests.cli_support import console_script

SPEED = 20.0
LIMIT = 20.0  # real seconds for any one wait
FIRST_CALLER = "09120000001"
SECOND_CALLER = "09120000002"


class RawPort:
    """The pty opened raw and non-blocking; bytes in, patterns waited for."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        tty.setraw(self.fd)
        self.buffer = bytearray()
        self._arrived = asyncio.Event()
        asyncio.get_running_loop().add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        with contextlib.suppress(BlockingIOError):
            self.buffer += os.read(self.fd, 4096)
            self._arrived.set()

    async def expect(self, pattern: bytes) -> re.Match[bytes]:
        async with asyncio.timeout(LIMIT):
            while (found := re.search(pattern, self.buffer)) is None:
                self._arrived.clear()
                await self._arrived.wait()
        return found

    async def command(self, text: str) -> bytes:
        """Send a command line and return what came back up to its final result."""
        self.buffer.clear()
        os.write(self.fd, text.encode() + b"\r")
        found = await self.expect(rb"\r\n(OK|ERROR)\r\n")
        return found.group(1)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.fd)
        os.close(self.fd)


async def read_record(stdout: asyncio.StreamReader) -> dict:
    async with asyncio.timeout(LIMIT):
        line = await stdout.readline()
    assert line, "daemon1521 emulate ended early"
    return json.loads(line)


async def test_emulate_announces_ptys_and_places_calls(tmp_path: Path):
    log = (tmp_path / "emulate.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        console_script(),
        "emulate",
        "-n", "2",
        "-p", "conexant-cx93001",
        "-p", "usr-5637",
        "--speed", str(SPEED),
        "--call", f"{FIRST_CALLER}:12#",
        "--duration", "30",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=log,
    )  # fmt: skip
    ports: list[RawPort] = []
    try:
        assert process.stdout is not None and process.stdin is not None
        lines = [await read_record(process.stdout) for _ in range(2)]
        assert [r["line"] for r in lines] == [1, 2]
        assert [r["personality"] for r in lines] == ["conexant-cx93001", "usr-5637"]
        assert all(r["number"].isdigit() and r["pty"].startswith("/dev/pts/") for r in lines)
        conexant, usr = (RawPort(r["pty"]) for r in lines)
        ports += [conexant, usr]
        # caller ID on: +VCID=1 is enough on both chips, as real units show
        for port, commands in (
            (conexant, ["ATE0", "AT+VCID=1"]),
            (usr, ["ATE0", "AT+VCID=1"]),
        ):
            for command in commands:
                assert await port.command(command) == b"OK"
        # the --call hunts to line 1; a call typed on standard input then finds line 2
        await conexant.expect(rb"RING")
        process.stdin.write(f"call {SECOND_CALLER} 5\n".encode())
        await process.stdin.drain()
        await usr.expect(rb"RING\r\n")
        found = await usr.expect(rb"NMBR=(\d+)\r\n")
        assert found.group(1).decode() == SECOND_CALLER
        await usr.expect(rb"DATE=\d{4}\r\n")
        # line 1 answers its caller, who presses the keys and hangs up after the hold
        os.write(conexant.fd, b"ATA\r")
        outcome = await read_record(process.stdout)
        assert outcome == {"call": FIRST_CALLER, "keys": "12#", "outcome": "answered"}
    finally:
        for port in ports:
            port.close()
        if process.stdin is not None:
            process.stdin.close()
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
        try:
            async with asyncio.timeout(LIMIT):
                code = await process.wait()
        except TimeoutError:
            process.kill()
            code = await process.wait()
        log.close()
    assert code == 0, (tmp_path / "emulate.log").read_text(errors="replace")[-2000:]
