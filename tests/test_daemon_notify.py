"""sd_notify and the watchdog ping, on a test NOTIFY_SOCKET."""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from pathlib import Path

from loguru import logger

from daemon1521.daemon.notify import Notifier, watchdog_interval, watchdog_loop
from tests.daemon_helpers import NotifyListener


def test_notifications_reach_a_path_socket(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    notifier = Notifier.from_env({"NOTIFY_SOCKET": str(listener.path)})
    try:
        assert notifier.enabled
        assert notifier.ready("1 line: 1 idle")
        assert notifier.status("1 line: 1 idle")  # same text: not sent again
        assert notifier.status("1 line: 1 in call")
        notifier.stopping()
        notifier.extend_timeout(2.5)
        notifier.reloading()
        notifier.watchdog()
        got = [listener.seen(k) for k in ("READY", "STATUS", "STOPPING", "RELOADING")]
        assert all(got)
        assert [m["STATUS"] for m in listener.seen("STATUS")] == [
            "1 line: 1 idle",
            "1 line: 1 in call",
        ]
        assert listener.seen("EXTEND_TIMEOUT_USEC", "2500000")
        assert listener.seen("RELOADING")[0]["MONOTONIC_USEC"].isdigit()
        assert listener.seen("WATCHDOG", "1")
    finally:
        notifier.close()
        listener.close()


def test_notifications_reach_an_abstract_socket() -> None:
    name = f"daemon1521-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    notifier = Notifier(f"@{name}")
    try:
        assert notifier.ready()
        sock.settimeout(2)
        assert sock.recv(100) == b"READY=1"
    finally:
        notifier.close()
        sock.close()


def test_without_systemd_nothing_is_sent(tmp_path: Path) -> None:
    notifier = Notifier.from_env({})
    assert not notifier.enabled
    assert not notifier.ready()
    gone = Notifier(str(tmp_path / "missing.sock"))
    try:
        assert not gone.watchdog()  # a vanished systemd socket is not fatal
    finally:
        gone.close()


def test_watchdog_interval_from_the_environment() -> None:
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    mine = {"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(mine) == 1.0
    assert watchdog_interval({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None


async def test_watchdog_pings_only_while_healthy_and_the_loop_keeps_time(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify.sock")
    notifier = Notifier(str(listener.path))
    healthy = True
    messages: list[str] = []
    sink = logger.add(messages.append, format="{message}", level="INFO")
    task = asyncio.create_task(watchdog_loop(notifier, 0.05, lambda: healthy))
    try:
        await asyncio.sleep(0.3)
        assert len(listener.seen("WATCHDOG")) >= 3
        healthy = False
        await asyncio.sleep(0.1)
        before = len(listener.seen("WATCHDOG"))
        await asyncio.sleep(0.3)
        assert len(listener.seen("WATCHDOG")) == before
        assert any("a line task is not running" in m for m in messages)
        healthy = True
        await asyncio.sleep(0.2)
        assert len(listener.seen("WATCHDOG")) > before
        time.sleep(0.2)  # the event loop is stuck
        await asyncio.sleep(0)
        await asyncio.sleep(0.02)
        assert any("event loop stalled" in m for m in messages)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        logger.remove(sink)
        notifier.close()
        listener.close()
