"""Fault: random bytes from a modem (issue 9, item 10).

A modem spewing noise must neither flood the log (13,005 "event queue full"
warnings in a second) nor open call records for calls that never rang; once
the noise stops, the line answers a real caller as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from loguru import logger

from daemon1521.audio.prompts import PromptCatalog, PromptLibrary
from daemon1521.logs import LogThrottle
from daemon1521.testbed.site import EmulatedSite, sample_bills

NOISE_SECONDS = 2.0
"""Real seconds of noise: many line-time ring cadences at the site's speed."""


@pytest.fixture
def warnings() -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(
        lambda message: lines.append(str(message)),
        level="WARNING",
        filter=lambda record: record["name"].startswith(("daemon1521.modem", "daemon1521.ivr")),
    )
    yield lines
    logger.remove(sink)


def _noise(rng: np.random.Generator, size: int) -> bytes:
    """Random bytes, with the shielded codes a voice modem sends salted in."""
    data = bytearray(rng.integers(0, 256, size, dtype=np.uint8).tobytes())
    for at in rng.integers(0, size - 2, size // 64):
        data[at : at + 2] = rng.choice([b"\x10R", b"\x105", b"\x10b", b"\x10d", b"\x10s"])
    return bytes(data)


async def test_noise_on_a_modem_port_opens_no_call_and_floods_no_log(
    tmp_path: Path, warnings: list[str]
) -> None:
    bill = sample_bills()[0]
    async with EmulatedSite(
        tmp_path / "store.db",
        prompts=PromptLibrary(PromptCatalog("fa")),
        bills=[bill],
    ) as site:  # line time runs flat out: many ring cadences pass during the noise
        modem = site.rig.modems[0]
        rng = np.random.default_rng(1521)
        loop = asyncio.get_running_loop()
        end = loop.time() + NOISE_SECONDS
        sent = 0
        while loop.time() < end:
            chunk = _noise(rng, 16_384)
            modem.inject(chunk)
            sent += len(chunk)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.5)
        assert sent > 1_000_000
        assert site.store.recent_calls(limit=10) == []  # no phantom call records
        assert len(warnings) <= 10, warnings[:20]

        await site.wait_idle(timeout=60)
        caller = site.caller("02188776655")
        await caller.dial()
        await caller.answer("ask_bill_id", bill.bill_id + "#")
        await caller.answer("bill_entered_confirm", "1")
        await caller.answer("offer_remember_bill", "2")
        await caller.answer("offer_payment", "2")
        assert await caller.until_line_hangs_up()
        await site.wait_idle(calls=1)
        [record] = site.store.recent_calls(limit=10)
        assert record.amount_announced == bill.amount_rials


def test_a_throttled_warning_says_how_many_were_suppressed() -> None:
    now = [0.0]
    lines: list[str] = []
    sink = logger.add(lambda m: lines.append(m.record["message"]), level="WARNING")
    try:
        throttle = LogThrottle(interval=10.0, clock=lambda: now[0])
        for _ in range(13_005):
            throttle.warning("full", "{}: event queue full", "port")
        now[0] = 11.0
        throttle.warning("full", "{}: event queue full", "port")
        throttle.warning("full", "{}: event queue full", "port")
        throttle.flush()
    finally:
        logger.remove(sink)
    assert lines == [
        "port: event queue full",
        "port: event queue full (13004 more suppressed in the last 11 s)",
        "port: event queue full (1 more suppressed in the last 0 s)",
    ]


async def test_a_flood_that_stops_is_still_counted() -> None:
    lines: list[tuple[str, str]] = []
    sink = logger.add(
        lambda m: lines.append((m.record["name"], m.record["message"])), level="WARNING"
    )
    try:
        throttle = LogThrottle(interval=0.05)
        for _ in range(100):
            throttle.warning("full", "event queue full")
        await asyncio.sleep(0.3)
    finally:
        logger.remove(sink)
    assert [message for _, message in lines] == [
        "event queue full",
        "event queue full (99 more suppressed in the last 0 s)",
    ]
    assert {name for name, _ in lines} == {__name__}
