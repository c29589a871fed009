"""The daemon killed (SIGKILL) in the middle of a call, or with records queued.

Before, the call's record stayed "in progress" for ever, counted as such by
``calls`` and ``stats``, and ``status``'s "calls today" restarted at 0 while
``stats`` did not. Now the next start closes it as ``interrupted`` and both
count today's calls from the records. Records that waited for a locked
database are in the spool when the daemon is killed, and written at the
next start.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
from pathlib import Path

import pytest
from loguru import logger

from daemon1521.billing.async_store import AsyncStore
from daemon1521.config import load_config
from daemon1521.daemon.app import Daemon
from daemon1521.daemon.control import arequest
from daemon1521.emulator.rig import Rig
from tests.daemon_helpers import ToneCalls, config_text
from tests.test_daemon_process import DAEMON, SPEED, daemon_process

CALLER = "09121234567"

pytestmark = pytest.mark.skipif(not DAEMON.exists(), reason="console script not installed")


async def test_a_call_cut_by_sigkill_is_closed_as_interrupted_at_the_next_start(
    tmp_path: Path,
) -> None:
    async with daemon_process(tmp_path) as killed:
        phone = killed.rig.phone(CALLER)
        assert await phone.dial("1521") == "answered"
        for _ in range(500):  # the flow starts a moment after the line goes off hook
            line = (await arequest(tmp_path / "control.sock", "status"))["lines"][0]
            if line["flow_state"] is not None:
                break
            await asyncio.sleep(0.02)
        assert line["call_id"] == 1
        killed.proc.send_signal(signal.SIGKILL)
        assert await killed.exit_code() == -signal.SIGKILL
        await phone.hang_up()

    messages: list[str] = []
    sink = logger.add(messages.append, format="{message}", level="WARNING")
    rig = Rig(1, ["conexant-cx93001"], speed=SPEED)
    await rig.start()
    config = tmp_path / "again.toml"  # the same store, control socket and prompts
    config.write_text(config_text(tmp_path, [str(rig.modems[0].link)]))
    daemon = Daemon(load_config(config), handler=ToneCalls(), clock=rig.clock, env={})
    try:
        await daemon.start()
        socket = tmp_path / "control.sock"
        (record,) = (await arequest(socket, "calls"))["calls"]
        assert record["outcome"] == "interrupted" and record["ended_at"] is not None
        stats = (await arequest(socket, "stats"))["stats"]
        status = await arequest(socket, "status")
        assert stats["outcomes_today"] == {"interrupted": 1}
        assert stats["calls_today"] == status["totals"]["calls_today"] == 1
        assert status["lines"][0]["calls_today"] == stats["lines"]["line1"]["calls_today"] == 1
        assert sum("left in progress" in m for m in messages) == 1
    finally:
        await daemon.stop()
        await rig.stop()
        logger.remove(sink)


async def test_records_waiting_for_a_locked_database_survive_sigkill(tmp_path: Path) -> None:
    socket = tmp_path / "control.sock"
    async with daemon_process(tmp_path) as killed:
        lock = sqlite3.connect(tmp_path / "store.db", timeout=5, isolation_level=None)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            phone = killed.rig.phone(CALLER)
            assert await phone.dial("1521") == "answered"
            await asyncio.sleep(0.5)
            await phone.hang_up()
            for _ in range(500):  # the call over, and every record of it in the spool
                status = await arequest(socket, "status")
                store, line = status["store"], status["lines"][0]
                if line["state"] == "idle" and 0 < store["queued"] == store["spooled"]:
                    break
                await asyncio.sleep(0.02)
            assert "locked" in store["problem"] and store["queued"] == store["spooled"]
            killed.proc.send_signal(signal.SIGKILL)
            assert await killed.exit_code() == -signal.SIGKILL
        finally:
            lock.close()
    async with await AsyncStore.open(tmp_path / "store.db") as store:
        (record,) = await store.recent_calls()
        assert record.caller_number == CALLER and record.answered_at is not None
        assert record.outcome == "hung_up" and record.states[0] == "welcome"
