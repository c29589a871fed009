"""A modem that stops answering, and a USB port that vanishes and returns.

Every personality, over real ptys. The driver must give up in bounded time
(never hang), say why (NotResponding, PortError, CallEnded), and work again
once the device does: after ``resume()`` through ``reset()`` or closing and
opening again, after ``reappear()`` through opening again (the daemon's line
task does that, with its backoff, between attempts).
"""

from __future__ import annotations

import asyncio

import pytest

from daemon1521.emulator.rig import wait_cancelled
from daemon1521.modem.errors import NotResponding, PortError
from tests.voice_support import PERSONALITIES, call_in, collect_keys, emulated_site

EVERY_CHIP = pytest.mark.parametrize("personality", PERSONALITIES)
GIVE_UP_WITHIN = 30.0
"""Emulated seconds: a timed-out command, a DTR drop and a reset attempt."""


async def _key_round_trip(rig, modem, caller: str) -> None:
    phone, incoming = await call_in(rig, modem, caller)
    assert incoming.number == caller
    pressing = asyncio.create_task(phone.press("6"))
    try:
        assert await collect_keys(modem, 1) == ["6"]
    finally:
        await wait_cancelled(pressing)
    await phone.hang_up()
    await modem.hang_up()


@EVERY_CHIP
async def test_silent_modem_while_idle_gives_up_then_reset_revives_it(personality):
    async with emulated_site(personality) as (rig, modem):
        emulated = rig.modems[0]
        emulated.stop_answering()
        started = rig.clock.now()
        with pytest.raises(NotResponding):
            await modem.initialise()
        assert rig.clock.now() - started < GIVE_UP_WITHIN
        assert modem.state == "down"
        emulated.resume()
        await modem.reset()
        assert modem.state == "idle"
        await _key_round_trip(rig, modem, "09120000011")


@EVERY_CHIP
async def test_modem_going_silent_mid_call_gives_up_then_reopening_revives_it(personality):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        emulated = rig.modems[0]
        emulated.stop_answering()
        started = rig.clock.now()
        with pytest.raises(NotResponding):
            await modem.next_key(30.0)
        assert rig.clock.now() - started < GIVE_UP_WITHIN
        assert not modem.in_call
        await phone.hang_up()
        emulated.resume()
        await modem.close()
        await modem.open()
        assert modem.state == "idle"
        await _key_round_trip(rig, modem, "09120000012")


@EVERY_CHIP
async def test_vanished_port_fails_fast_and_reopens_when_it_returns(personality):
    async with emulated_site(personality) as (rig, modem):
        emulated = rig.modems[0]
        loop = asyncio.get_running_loop()
        waiting = asyncio.create_task(modem.wait_for_call())
        try:
            await rig.clock.sleep(1.0)
            await emulated.vanish()
            gone_at = loop.time()
            with pytest.raises(PortError):
                await waiting
            assert loop.time() - gone_at < 0.5  # real seconds: noticed, not timed out
        finally:
            await wait_cancelled(waiting)
        assert modem.state == "down"
        await modem.close()
        # opening fails at once while the device is away, and works once it is back
        with pytest.raises(PortError):
            await modem.open()
        await rig.clock.sleep(3.0)
        await emulated.reappear()
        await modem.close()
        info = await modem.open()
        assert info.profile
        assert modem.state == "idle"
        await _key_round_trip(rig, modem, "09120000013")


async def test_opening_a_vanished_device_fails_at_once():
    async with emulated_site("usr-5637") as (rig, modem):
        await rig.modems[0].vanish()
        await modem.close()
        started = rig.clock.now()
        with pytest.raises(PortError):
            await modem.open()
        assert rig.clock.now() - started < 1.0
        assert modem.state != "idle"


@EVERY_CHIP
async def test_modem_going_silent_while_streaming_is_noticed(personality):
    async with emulated_site(personality) as (rig, modem):
        phone, _ = await call_in(rig, modem)
        emulated = rig.modems[0]

        async def hang_the_modem() -> None:
            await rig.clock.sleep(1.0)
            emulated.stop_answering()

        hanging = asyncio.create_task(hang_the_modem())
        started = rig.clock.now()
        try:
            with pytest.raises(NotResponding):
                await modem.next_key(60.0)  # a long question: the modem dies meanwhile
        finally:
            await wait_cancelled(hanging)
        assert rig.clock.now() - started < GIVE_UP_WITHIN
        await phone.hang_up()
        emulated.resume()
        await modem.reset()
        await _key_round_trip(rig, modem, "09120000014")
