"""Faults at the command line (issue 9, item 12): a runtime directory planted
by another user, `lines free` reporting a failure on success, `say` with
input it cannot speak."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from daemon1521.cli import main
from daemon1521.daemon.control import (
    ControlClientError,
    ControlServer,
    DaemonNotRunning,
    request,
)
from tests.cli_support import console_script

NOBODY = 65534


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Path]:
    """An $XDG_RUNTIME_DIR of our own for this test."""
    xdg = tmp_path / "xdg"
    xdg.mkdir(mode=0o700)
    yield xdg


def _run_emulated(runtime: Path, tmp_path: Path) -> subprocess.CompletedProcess[str] | None:
    """``run --emulated 1`` with no config; its result, or None once it is serving
    (its socket answers), after which it is stopped."""
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "DAEMON1521_CONFIG": str(tmp_path / "absent.toml"),
    }
    env.pop("NOTIFY_SOCKET", None)
    child = subprocess.Popen(
        [console_script(), "run", "--emulated", "1", "--speed", "20"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    socket = runtime / "daemon1521" / "control.sock"
    deadline = time.monotonic() + 30
    try:
        while child.poll() is None and time.monotonic() < deadline:
            if socket.is_socket() and _answers(socket):
                return None
            time.sleep(0.1)
        if child.poll() is None:
            return None
        out, _ = child.communicate(timeout=30)
        return subprocess.CompletedProcess(child.args, child.returncode, out)
    finally:
        if child.poll() is None:
            child.terminate()
            child.communicate(timeout=30)


def _answers(socket: Path) -> bool:
    try:
        return request(socket, "status", timeout=5).get("ok") is True
    except (ControlClientError, DaemonNotRunning):
        return False


@pytest.mark.parametrize("how", ["world-writable", "another user's", "a symlink"])
def test_run_emulated_refuses_a_runtime_directory_it_cannot_trust(
    runtime: Path, tmp_path: Path, how: str
) -> None:
    planted = runtime / "daemon1521"
    if how == "world-writable":
        planted.mkdir()
        planted.chmod(0o777)
    elif how == "another user's":
        if os.getuid() != 0:
            pytest.skip("giving a directory to another user needs root")
        planted.mkdir(mode=0o700)
        os.chown(planted, NOBODY, NOBODY)
    else:
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir(mode=0o700)
        planted.symlink_to(elsewhere)
    result = _run_emulated(runtime, tmp_path)
    assert result is not None, "the daemon started in a directory it should not trust"
    assert result.returncode != 0
    assert str(planted) in result.stdout and "Traceback" not in result.stdout, result.stdout
    assert not (planted / "control.sock").exists()


async def test_the_cli_does_not_believe_a_socket_in_an_untrusted_directory(
    runtime: Path, tmp_path: Path
) -> None:
    planted = runtime / "daemon1521"
    planted.mkdir()
    planted.chmod(0o777)

    async def fake_status(request: Any) -> dict[str, Any]:
        return {"daemon": {}, "status": "FAKE: all fine", "lines": [], "totals": {}}

    fake = ControlServer(planted / "control.sock", {"status": fake_status})
    await fake.start()
    env = {
        **os.environ,
        "XDG_RUNTIME_DIR": str(runtime),
        "DAEMON1521_CONFIG": str(tmp_path / "absent.toml"),
    }
    env.pop("DAEMON1521_SOCKET", None)
    try:
        child = await asyncio.create_subprocess_exec(
            console_script(),
            "status",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
        )
        out, _ = await asyncio.wait_for(child.communicate(), 30)
    finally:
        await fake.close()
    text = out.decode()
    assert child.returncode == 2, text
    assert "FAKE" not in text and str(planted) in text and "0777" in text, text


def test_a_fresh_runtime_directory_is_private(runtime: Path, tmp_path: Path) -> None:
    result = _run_emulated(runtime, tmp_path)
    assert result is None  # it started and served until stopped
    made = runtime / "daemon1521"
    assert made.is_dir() and (made.stat().st_mode & 0o777) == 0o700
    assert made.stat().st_uid == os.getuid()


# -- lines free -------------------------------------------------------------------------


async def test_lines_free_says_the_line_is_back_in_service(tmp_path: Path) -> None:
    async def free(request: Any) -> dict[str, Any]:
        # a failed line just freed: retried now, still out of service this instant
        return {"line": {"name": request["line"], "state": "out_of_service", "admin": "in"}}

    server = ControlServer(tmp_path / "c.sock", {"line.free": free})
    await server.start()
    try:
        child = await asyncio.create_subprocess_exec(
            console_script(),
            "lines",
            "free",
            "line1",
            "--socket",
            str(server.path),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await asyncio.wait_for(child.communicate(), 30)
    finally:
        await server.close()
    text = out.decode()
    assert child.returncode == 0, text
    assert "returned to service" in text, text


# -- say -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["9" * 5000], "more than a bill can be"),
        (["--digits", ""], "no digits"),
        (["--digits", "  "], "no digits"),
    ],
)
def test_say_refuses_what_it_cannot_speak(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["say", *args])
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert "int_max_str_digits" not in result.output and "4300" not in result.output
